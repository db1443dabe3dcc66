"""Retention: raw rows past ``retention.days`` go, in batches; KPIs stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot_analytics.cli import main
from bot_analytics.config import ConfigError, parse_settings
from bot_analytics.kpis.rollup import rollup_range
from bot_analytics.retention import purge
from bot_analytics.storage import db
from bot_analytics.storage.queries import FEEDBACK, MEMBER_EVENTS, BatchStore

from .conftest import rows
from .test_kpis import TIMEOUT, _visit

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _fill(database_url: str) -> sa.Engine:
    """Seven interactions 40 days old and three 10 days old, over two tenants and bots,
    with member events and ratings of both ages, and the days rolled up."""
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    visits = []
    for i in range(10):
        ts = NOW - timedelta(days=40 if i < 7 else 10, hours=i)
        visit = _visit(i, 100 + i, ts)
        visit["tenant_id"] = "a" if i % 2 else "b"
        visit["bot_id"] = 1 + i % 3
        visits.append(visit)
    BatchStore(engine, TIMEOUT).write(visits, [], [])
    old, new = NOW - timedelta(days=45), NOW - timedelta(days=5)
    with engine.begin() as conn:
        conn.execute(sa.insert(MEMBER_EVENTS), [
            {"tenant_id": "a", "bot_id": 1, "update_id": n, "ts": ts, "member_id": 100,
             "chat_id": 100, "kind": "start", "payload": None}
            for n, ts in enumerate([old, old, new])])
        conn.execute(sa.insert(FEEDBACK), [
            {"tenant_id": "a", "bot_id": 1, "update_id": n, "ts": ts, "member_id": 100,
             "chat_id": 100, "csat_rating": 4, "trigger": "request"}
            for n, ts in enumerate([old, new])])
    rollup_range(engine, "daily", NOW - timedelta(days=41), NOW - timedelta(days=9))
    return engine


def _count(url: str, table: str) -> int:
    return int(rows(url, f"SELECT count(*) AS n FROM {table}")[0].n)


def test_purge_deletes_old_raw_rows_in_batches_and_keeps_kpis(database_url: str) -> None:
    engine = _fill(database_url)
    kpis = _count(database_url, "kpi_metrics")
    assert kpis > 0
    batches: list[tuple[str, int]] = []
    counted = purge(engine, 30, NOW, batch_size=2, dry_run=True)
    assert counted == {"interactions": 7, "member_events": 2, "feedback": 1}
    assert _count(database_url, "interactions") == 10          # a dry run deletes nothing
    deleted = purge(engine, 30, NOW, batch_size=2,
                    progress=lambda table, n: batches.append((table, n)))
    assert deleted == counted
    assert all(n <= 2 for _, n in batches)
    assert sum(n for t, n in batches if t == "interactions") == 7
    assert _count(database_url, "interactions") == 3
    assert _count(database_url, "member_events") == 1
    assert _count(database_url, "feedback") == 1
    assert _count(database_url, "kpi_metrics") == kpis          # KPIs are kept
    assert purge(engine, 30, NOW) == {"interactions": 0, "member_events": 0, "feedback": 0}
    with pytest.raises(ValueError, match="must be positive"):
        purge(engine, 0, NOW)
    engine.dispose()


def test_purge_command_and_settings(database_url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    engine = _fill(database_url)
    engine.dispose()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database:\n  url: '{database_url}'\nretention:\n  days: 100000\n")
    assert main(["-c", str(cfg), "purge", "--dry-run"]) == 0
    assert "would delete rows older than 100000 days: interactions 0" in \
        capsys.readouterr().out
    # The data are months old by now: --days 1 takes them all.
    assert main(["-c", str(cfg), "purge", "--days", "1"]) == 0
    assert "deleted rows older than 1 days: interactions 10, member_events 3, " \
           "feedback 2" in capsys.readouterr().out
    assert _count(database_url, "kpi_metrics") > 0
    cfg.write_text(f"database:\n  url: '{database_url}'\nretention:\n  days: null\n")
    assert main(["-c", str(cfg), "purge"]) == 0
    assert "nothing is purged" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"retention\.days"):
        parse_settings({"retention": {"days": 0}})
    with pytest.raises(ConfigError, match=r"retention\.schedule"):
        parse_settings({"retention": {"schedule": "daily"}})


async def test_the_daily_purge_job(database_url: str, tmp_path: Path) -> None:
    from bot_analytics import Analytics
    from bot_analytics.jobs import run_purge

    from .conftest import make_settings

    _fill(database_url).dispose()
    a = Analytics(make_settings(database_url, tmp_path, retention={"days": 30}),
                  clock=lambda: NOW, name="ret")
    await a.start()
    assert "ret:purge" in {j.id for j in a.scheduler.get_jobs()}
    await run_purge("ret")
    assert _count(database_url, "interactions") == 3
    assert a.health()["jobs"]["runs"] == 1
    await a.close()
