"""Scheduled rollups: which periods a run covers, persistence, locking, failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot_analytics import Analytics, ConfigError
from bot_analytics.config import parse_settings
from bot_analytics.jobs import periods_to_roll, run_rollup
from bot_analytics.storage import db

from .conftest import make_settings, rows
from .test_writer import event


def test_periods_to_roll() -> None:
    at = datetime(2026, 3, 2, 0, 15, tzinfo=UTC)  # Monday 00:15, the daily run
    assert periods_to_roll("daily", at, 2) == [
        datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC)]
    assert periods_to_roll("hourly", datetime(2026, 3, 2, 10, 5, tzinfo=UTC), 0) == [
        datetime(2026, 3, 2, 9, tzinfo=UTC)]
    assert periods_to_roll("weekly", at, 0) == [datetime(2026, 2, 23, tzinfo=UTC)]
    assert periods_to_roll("monthly", at, 1) == [
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)]


async def test_scheduler_persists_jobs_and_runs_rollups(database_url: str,
                                                        tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path), name="shop")
    yesterday = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) \
        - timedelta(days=1)
    for i in range(4):
        a.writer.put(event(i, member=i % 2, ts=yesterday + timedelta(minutes=i)))
    await a.start()
    assert await a.flush(10)
    jobs = {j.id: j for j in a.scheduler.get_jobs()}
    assert set(jobs) == {f"shop:rollup:{k}" for k in ("hourly", "daily", "weekly",
                                                      "monthly")} | {"shop:optimize",
                                                                     "shop:purge"}
    weekly = jobs["shop:optimize"].next_run_time
    assert (weekly.weekday(), weekly.hour, weekly.minute) == (0, 1, 0)  # Monday 01:00
    daily = jobs["shop:rollup:daily"]
    assert (daily.next_run_time.hour, daily.next_run_time.minute) == (0, 15)
    assert daily.coalesce and daily.misfire_grace_time == 6 * 3600
    stored = rows(database_url, "SELECT id FROM bot_analytics_jobs ORDER BY id")
    assert len(stored) == 6

    await run_rollup("shop", "daily")
    health = a.health()["jobs"]
    assert health["runs"] == 1 and health["failures"] == 0
    assert set(health["next_runs"]) == {"hourly KPI rollup", "daily KPI rollup",
                                        "weekly KPI rollup", "monthly KPI rollup",
                                        "optimizer", "retention purge"}
    got = {r.metric_type: r.metric_value for r in rows(
        database_url, "SELECT metric_type, metric_value FROM kpi_metrics "
                      "WHERE aggregation_period = 'daily' AND dimension IS NULL")}
    assert got["interactions"] == 4 and got["active_users"] == 2
    await a.close()

    again = Analytics(make_settings(database_url, tmp_path), name="shop")  # a restart
    await again.start()
    assert len(again.scheduler.get_jobs()) == 6  # replaced, not doubled
    await again.close()


async def test_a_failing_rollup_is_counted_not_raised(tmp_path: Path) -> None:
    a = Analytics(make_settings(f"sqlite:///{tmp_path / 'j.sqlite3'}", tmp_path),
                  name="broken")
    await a.start()
    a._engine = db.create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'x' / 'db'}")
    a._engine.dispose()
    # The tables are not there: the rollup fails inside the job.
    await run_rollup("broken", "daily")
    jobs = a.health()["jobs"]
    assert jobs["failures"] == 1 and "daily rollup" in jobs["last_error"]
    await run_rollup("nobody", "daily")  # an instance this process doesn't have: ignored
    await a.close()


def test_run_lock_on_postgresql(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    with db.RunLock(engine, "job") as first:
        with db.RunLock(engine, "job") as second:
            if engine.dialect.name == "postgresql":
                assert first and not second
            else:
                assert first and second  # SQLite: a single writer process
        with db.RunLock(engine, "other job") as other:
            assert other
    engine.dispose()


def test_bad_cron_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"rollup.schedule.*daily.*not a cron"):
        parse_settings({"rollup": {"schedule": {"daily": "every day"}}}, "config.yaml")
    with pytest.raises(ConfigError, match=r"rollup\.schedule\.yearly"):
        parse_settings({"rollup": {"schedule": {"yearly": "0 0 1 1 *"}}}, "config.yaml")


def test_no_scheduler_when_disabled(tmp_path: Path) -> None:
    import asyncio

    async def run() -> None:
        a = Analytics(make_settings(f"sqlite:///{tmp_path / 'n.sqlite3'}", tmp_path,
                                    rollup={"enabled": False},
                                    optimizer={"enabled": False},
                                    retention={"days": None}))
        await a.start()
        assert a.scheduler is None and "next_runs" not in a.health()["jobs"]
        await a.close()

    asyncio.run(run())
