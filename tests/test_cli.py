"""The bot-analytics command and the demo."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot_analytics import Analytics
from bot_analytics.cli import main
from bot_analytics.demo import plan_actions, run_demo, summarize

from .conftest import make_settings, rows
from .test_writer import event


def write_config(tmp_path: Path, url: str) -> Path:
    f = tmp_path / "config.yaml"
    f.write_text(f"database:\n  url: '{url}'\nwriter:\n  spool_path: '{tmp_path / 's'}'\n")
    return f


def test_db_upgrade_and_current(database_url: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, database_url)
    assert main(["-c", str(cfg), "db", "current"]) == 0
    assert "revision (none), behind: head is 0011" in capsys.readouterr().out
    assert main(["-c", str(cfg), "db", "upgrade"]) == 0
    assert "database at revision 0011" in capsys.readouterr().out
    assert main(["-c", str(cfg), "db", "current"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_config_error_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("databse: {}\n")
    assert main(["-c", str(cfg), "db", "current"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'databse'" in err and "did you mean 'database'" in err


async def test_forget(database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path))
    a.writer.put(event(1, member=77))
    a.writer.put(event(2, member=78))
    await a.close()
    cfg = write_config(tmp_path, database_url)
    # main() runs its own event loop: run it in a thread, as from a shell.
    import asyncio

    code = await asyncio.to_thread(main, ["-c", str(cfg), "forget", "77"])
    assert code == 0
    assert [r.member_id for r in rows(database_url, "SELECT member_id FROM interactions")] == [78]
    assert [r.member_id for r in rows(database_url, "SELECT member_id FROM members")] == [78]


async def test_demo_records_what_it_simulated(database_url: str, tmp_path: Path) -> None:
    users, days, seed = 30, 6, 3
    start = datetime(2026, 10, 1, tzinfo=UTC)
    result = await run_demo(users=users, days=days, seed=seed, workdir=tmp_path / "demo",
                            database_url=database_url, progress=False)
    await result.analytics.close()
    plan = result.actions
    # The plan is the seed's: the same people do the same things, and only the
    # purchases depend on the experiment's variant.
    alone = plan_actions(users, days, start, seed)
    assert [(a.user, a.kind) for a in plan if a.kind != "buy"] == \
        [(a.user, a.kind) for a in alone if a.kind != "buy"]
    planned_starts = Counter(a.arg for a in plan if a.kind == "start")
    campaigns = Counter(r.campaign for r in rows(database_url, "SELECT campaign FROM members"))
    assert campaigns == planned_starts
    blocks = sum(1 for a in plan if a.kind == "block")
    assert rows(database_url, "SELECT count(*) AS n FROM member_events "
                              "WHERE kind = 'blocked'")[0].n == blocks
    texts = Counter(a.arg for a in plan if a.kind == "text")
    stored = Counter(r.text for r in rows(database_url, "SELECT text FROM interactions "
                                                        "WHERE event_type = 'message'"))
    assert all(stored[t] == n for t, n in texts.items())
    purchases = rows(database_url, "SELECT count(*) AS n FROM interactions "
                                   "WHERE event_type = 'successful_payment'")[0].n
    assert purchases == sum(1 for a in plan if a.kind == "buy")
    total = rows(database_url, "SELECT count(*) AS n FROM interactions")[0].n
    assert total + blocks + result.survey_answers == result.updates
    ratings = rows(database_url, "SELECT count(*) AS n FROM feedback")[0].n
    assert ratings == result.survey_answers
    text = summarize(database_url)
    assert f"Recorded {total:,} interactions from {users} members" in text


async def test_demo_experiment_names_the_planted_winner(tmp_path: Path) -> None:
    """The full demo (600 people, 30 days): people who see save20 buy twice as often."""
    from bot_analytics.experiments.analysis import analyze
    from bot_analytics.storage import db

    result = await run_demo(workdir=tmp_path / "demo", progress=False)
    await result.analytics.close()
    engine = db.create_db_engine(result.database_url)
    report = analyze(engine, "premium_pitch", now=result.last)
    engine.dispose()
    assert report.decision == "winner" and report.winner == "save20"
    assert report.primary.srm.mismatch is False
    shop_visitors = {a.user for a in result.actions if a.kind == "shop"}
    assert sum(v.members for v in report.primary.variants) == len(shop_visitors)
    buyers = rows(result.database_url, "SELECT count(DISTINCT member_id) AS n "
                                       "FROM conversions WHERE outcome = 'purchased'")[0].n
    assert sum(v.conversions for v in report.primary.variants) == buyers

    # The optimizer names what the simulation planted.
    from bot_analytics.optimize import optimize

    engine = db.create_db_engine(result.database_url)
    found, _ = optimize(engine, result.analytics.settings, "default", start=result.first,
                        end=result.last, now=result.last)
    engine.dispose()
    money = found.monetization
    assert money.profitable_intents[0].key == "pricing"
    assert ("campaign", "spring_promo") in {(t.kind, t.key) for t in money.significant
                                            if t.difference > 0}
    assert found.sentiment.de_escalation_triggers[0].phrase == "late"
    segments = found.personalization
    best = max(segments.segments, key=lambda s: s.conversion_rate)
    assert best.name.startswith("high-value buyers")
    persona_of = {result.telegram_ids[i]: p for i, p in result.personas.items()}
    members = [m for m, s in segments.assignments.items() if s == best.name]
    shoppers = sum(persona_of[m] == "shopper" for m in members)
    assert shoppers / len(members) >= 0.6, (shoppers, len(members))
    titles = [r.title for r in found.recommendations]
    assert "Ship save20 from experiment premium_pitch" in titles
    assert titles[0] == "pricing sells: lead more people to it"

    # The month ends with the weekly report in the team channel and the operator's
    # questions.
    finale = result.finale
    assert finale is not None and finale.report_outcome == {"skipped": 0, "sent": 1}
    assert "Weekly report, 2026-10-19 to 2026-10-25" in finale.channel_messages[0]
    assert len(finale.chart_files) == 4
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in finale.chart_files)
    answers = {command: "\n".join(replies) for command, replies in finale.admin_session}
    assert "Weekly from 2026-10-19" in answers["/stats week"]
    assert "[picture: chart]" in answers["/stats week"]
    assert "pricing sells" in answers["/recommendations"]
    assert "high-value buyers" in answers["/segments"]


async def test_rollup_and_kpi_commands(database_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import json
    from datetime import timedelta

    a = Analytics(make_settings(database_url, tmp_path))
    day = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday
    for i in range(6):  # week one: 6 interactions by 2 members
        a.writer.put(event(i, member=i % 2, ts=day + timedelta(hours=i)))
    for i in range(6, 9):  # week two: 3 interactions by 1 member
        a.writer.put(event(i, member=5, ts=day + timedelta(days=7, hours=i)))
    await a.close()
    cfg = write_config(tmp_path, database_url)
    args = ["-c", str(cfg), "rollup", "--period", "weekly", "--from", "2026-03-02",
            "--to", "2026-03-16"]
    assert await asyncio.to_thread(main, args) == 0
    assert "wrote" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["-c", str(cfg), "kpi", "--period", "week",
                                          "--format", "json"]) == 0
    got = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert got["interactions"]["value"] == 3 and got["interactions"]["previous"] == 6
    assert got["interactions"]["change"] == -0.5
    assert got["active_users"]["value"] == 1 and got["active_users"]["previous"] == 2
    assert got["new_users"]["value"] == 1
    assert await asyncio.to_thread(main, ["-c", str(cfg), "kpi"]) == 0
    table = capsys.readouterr().out
    assert "interactions" in table and "▼ 50.0%" in table
    bad = ["-c", str(cfg), "rollup", "--period", "fortnight", "--from", "2026-03-02"]
    assert await asyncio.to_thread(main, bad) == 2
    assert "period must be one of" in capsys.readouterr().err
