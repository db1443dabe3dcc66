"""The optimizer over the plugin's database: reading the tables, storing runs and
segments, the command, the scheduled job, and ``analytics.segment()`` in a handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from bot_analytics import Analytics
from bot_analytics.cli import main
from bot_analytics.emulator import TelegramEmulator
from bot_analytics.jobs import optimize_now, run_optimize
from bot_analytics.optimize import latest_run, load_segments, optimize
from bot_analytics.storage import db
from bot_analytics.storage.models import (
    Conversion,
    Interaction,
    Member,
    MemberEventRow,
    MemberSegment,
)
from optimizer import BotOptimizer, OptimizerData, load_data
from optimizer.synthetic import synthetic_data

from .conftest import RunningBot, make_settings, new_bot, rows

START = datetime(2026, 1, 5, tzinfo=UTC)


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def store(engine: sa.Engine, data: OptimizerData, tenant: str = "default",
          first_id: int = 0) -> None:
    """Write synthetic frames into the plugin's tables, as the writer would (interaction
    ids shifted by ``first_id``)."""
    i = data.interactions
    inter = [{"id": first_id + int(r.id), "tenant_id": tenant, "bot_id": int(r.bot_id),
              "update_id": int(r.id), "event_type": "message", "ts": r.ts.to_pydatetime(),
              "chat_id": int(r.chat_id), "chat_type": "private", "member_id": int(r.member_id),
              "text": _none(r.text), "intent": r.intent, "sentiment": _none(r.sentiment),
              "sentiment_score": _none(r.sentiment_score),
              "handled": bool(r.handled), "handler_time_ms": 1.0,
              "response_text": _none(r.response_text), "reply_count": 1,
              "escalated": bool(r.escalated), "monetization_event": False}
             for r in i.itertuples()]
    conv = [{"tenant_id": tenant, "bot_id": int(r.bot_id), "ts": r.ts.to_pydatetime(),
             "member_id": int(r.member_id), "interaction_id": first_id + int(r.interaction_id),
             "outcome": "purchased", "value": float(r.value),
             "amount_minor": round(r.value * 100), "currency": r.currency,
             "external_id": f"o{n}", "source": "api"}
            for n, r in enumerate(data.purchases.itertuples())]
    mem = [{"tenant_id": tenant, "bot_id": int(r.bot_id), "member_id": int(r.member_id),
            "first_seen": r.first_seen.to_pydatetime(), "last_seen": r.first_seen.to_pydatetime(),
            "campaign": _none(r.campaign), "blocked": False, "opted_out": False}
           for r in data.members.itertuples()]
    blk = [{"tenant_id": tenant, "bot_id": int(r.bot_id), "member_id": int(r.member_id),
            "ts": r.ts.to_pydatetime(), "kind": "blocked", "update_id": n}
           for n, r in enumerate(data.blocks.itertuples())]
    with engine.begin() as conn:
        for model, batch in ((Interaction, inter), (Conversion, conv), (Member, mem),
                             (MemberEventRow, blk)):
            if batch:
                conn.execute(sa.insert(model.__table__), batch)  # type: ignore[attr-defined]


@pytest.fixture
def engine(database_url: str) -> Any:
    e = db.create_db_engine(database_url)
    db.upgrade(e)
    yield e
    e.dispose()


def test_load_data_reads_what_the_tables_hold(engine: sa.Engine) -> None:
    data = synthetic_data(150, days=14, seed=4)
    store(engine, data)
    store(engine, synthetic_data(20, days=14, seed=5), tenant="other",
          first_id=10**6)  # ignored
    got = load_data(engine, "default", data.start, data.end)
    assert got.interactions["id"].tolist() == data.interactions["id"].tolist()
    cols = ["ts", "member_id", "intent", "sentiment", "escalated", "text", "response_text"]
    pd.testing.assert_frame_equal(got.interactions[cols].reset_index(drop=True),
                                  data.interactions[cols].reset_index(drop=True),
                                  check_dtype=False)
    assert got.interactions["sentiment_score"].tolist() == pytest.approx(
        data.interactions["sentiment_score"].tolist(), nan_ok=True)
    assert sorted(got.purchases["interaction_id"]) == sorted(data.purchases["interaction_id"])
    assert got.currency == "USD"
    assert sorted(got.blocks["member_id"]) == sorted(data.blocks["member_id"])
    assert dict(zip(got.members["member_id"], got.members["campaign"], strict=True)) == \
        dict(zip(data.members["member_id"], data.members["campaign"], strict=True))
    # A shorter period: only its interactions, and only purchases they triggered.
    half = data.start + timedelta(days=7)
    part = load_data(engine, "default", data.start, half)
    assert part.interactions["ts"].max() < pd.Timestamp(half)
    assert set(part.purchases["interaction_id"]) <= set(part.interactions["id"])
    assert load_data(engine, "default", data.start, data.end, bot_id=2).interactions.empty
    with pytest.raises(TypeError, match="expected an SQLAlchemy Engine"):
        load_data("sqlite://", "default", data.start, data.end)


def test_optimize_stores_the_run_and_the_segments(engine: sa.Engine, tmp_path: Path) -> None:
    data = synthetic_data(800, days=28, seed=8)
    store(engine, data)
    settings = make_settings(str(engine.url.render_as_string(hide_password=False)), tmp_path)
    now = data.end + timedelta(hours=1)
    report, run_id = optimize(engine, settings, "default", start=data.start, end=data.end,
                              source="cli", now=now)
    assert run_id is not None and report.error is None
    # The database path finds what the frames give.
    direct = BotOptimizer(data).run("default")
    assert [t.key for t in report.monetization.profitable_intents] == \
        [t.key for t in direct.monetization.profitable_intents]
    assert report.monetization.profitable_intents[0].p_value == pytest.approx(
        direct.monetization.profitable_intents[0].p_value)
    stored = latest_run(engine, "default")
    assert stored is not None and stored.id == run_id and stored.source == "cli"
    assert stored.result == json.loads(report.to_json())
    assert stored.period_start == data.start and stored.created_at == now
    segments = load_segments(engine)
    assert len(segments) == report.members == len(report.assignments)
    assert {(t, m): s for (t, m), s in segments.items()} == {
        ("default", m): s for m, s in report.assignments.items()}
    # A second run replaces the tenant's segments, and forget() erases a member's.
    optimize(engine, settings, "default", start=data.start, end=data.end, now=now)
    seg = MemberSegment.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(seg)).scalar() \
            == report.members
    member = next(iter(report.assignments))
    with engine.begin() as conn:
        assert db.delete_member(conn, "default", member)["member_segments"] == 1
    assert latest_run(engine, "nobody") is None


def _write_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database:\n  url: '{url}'\nwriter:\n  spool_path: '{tmp_path / 's'}'\n")
    return cfg


def test_optimize_command(engine: sa.Engine, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    data = synthetic_data(600, days=28, seed=2)
    store(engine, data)
    cfg = _write_config(tmp_path, engine.url.render_as_string(hide_password=False))
    period = ["--from", "2026-01-05", "--to", "2026-02-02"]
    assert main(["-c", str(cfg), "optimize", *period]) == 0
    out, err = capsys.readouterr()
    assert "What sells" in out and "pricing" in out and "'late'" in out
    assert "stored as optimization run 1" in out
    assert "monetization triggers..." in err  # progress, on stderr
    assert main(["-c", str(cfg), "optimize", *period, "--json", "--no-store", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["monetization"]["profitable_intents"][0]["key"] == "pricing"
    assert err == ""
    assert rows(str(engine.url.render_as_string(hide_password=False)),
                "SELECT count(*) AS n FROM optimization_runs")[0].n == 1
    assert main(["-c", str(cfg), "optimize", "--from", "2027-01-01", "--to", "2026-01-01"]) == 2
    assert "must be after --from" in capsys.readouterr().err
    # Nothing in the period: said, and a non-zero exit.
    assert main(["-c", str(cfg), "optimize", "--from", "2025-01-01", "--to", "2025-02-01",
                 "-q"]) == 1
    assert "no interactions in the period" in capsys.readouterr().out


def test_optimize_command_on_an_unmigrated_database(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    cfg = _write_config(tmp_path, f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert main(["-c", str(cfg), "optimize"]) == 2
    assert "run `bot-analytics db upgrade`" in capsys.readouterr().err


async def test_the_scheduled_job_runs_per_tenant(database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path), name="opt")
    data = synthetic_data(300, days=28, seed=6)
    db.upgrade(a.engine)
    store(a.engine, data)
    store(a.engine, synthetic_data(100, days=28, seed=7), tenant="second", first_id=10**6)
    now = data.end
    assert optimize_now(a, now) == 2
    assert {r.tenant_id for r in rows(database_url, "SELECT tenant_id FROM optimization_runs "
                                                    "WHERE source = 'job'")} == \
        {"default", "second"}
    await a.start()
    await run_optimize("opt")   # now: no data in the last 30 days, still a run per tenant
    assert a.health()["jobs"]["runs"] == 1
    a._engine = db.create_db_engine(f"sqlite:///{tmp_path / 'gone' / 'x.sqlite3'}")
    await run_optimize("opt")   # the tables are missing: counted, not raised
    jobs = a.health()["jobs"]
    assert jobs["failures"] == 1 and "optimizer" in jobs["last_error"]
    await a.close()


async def test_segment_in_a_handler(database_url: str, tmp_path: Path,
                                    emulator: TelegramEmulator) -> None:
    from aiogram import Dispatcher
    from aiogram.types import Message

    from bot_analytics import UpdateContext

    a = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()

    @dp.message()
    async def offer(message: Message, analytics: UpdateContext) -> None:
        segment = await analytics.segment()
        await message.answer(f"segment: {segment}")

    a.setup(dp)
    bot = new_bot(emulator, emulator.add_bot("seg_bot"))
    alice, bob = emulator.user("Alice"), emulator.user("Bob")
    db.upgrade(a.engine)
    with a.engine.begin() as conn:
        conn.execute(sa.insert(MemberSegment.__table__), [  # type: ignore[attr-defined]
            {"tenant_id": "default", "member_id": alice.id, "segment": "high-value buyers",
             "run_id": 1, "assigned_at": datetime.now(UTC)}])
    async with RunningBot(emulator, dp, [bot], a) as running:
        alice.send("hello")
        bob.send("hello")
        await running.settle(2)
        await emulator.wait_for(lambda: alice.received() and bob.received())
    assert [m["text"] for m in alice.received()] == ["segment: high-value buyers"]
    assert [m["text"] for m in bob.received()] == ["segment: None"]
    assert await a.segment(alice.id) == "high-value buyers"
    await a.close()
    await bot.session.close()
