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
    assert "revision (none), behind: head is 0003" in capsys.readouterr().out
    assert main(["-c", str(cfg), "db", "upgrade"]) == 0
    assert "database at revision 0003" in capsys.readouterr().out
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
    plan = plan_actions(users, days, start, seed)
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
    assert total + blocks == result.updates
    text = summarize(database_url)
    assert f"Recorded {total:,} interactions from {users} members" in text
