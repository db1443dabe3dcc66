"""Reports and alerts: what a report holds, its renderings, scheduled posting to channels
(once, through flood control, past a channel that refuses the bot), anomaly and threshold
alerts, the admin commands that read the optimizer, and ``bot-analytics report``."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from bot_analytics import Analytics
from bot_analytics.alerts import check_day, daily_series
from bot_analytics.cli import main
from bot_analytics.config import Settings
from bot_analytics.emulator import TelegramEmulator
from bot_analytics.jobs import run_alerts, run_report
from bot_analytics.kpis.rollup import KPI_METRICS, rollup_range
from bot_analytics.nlp.unknown import MessageCluster, UnknownReport
from bot_analytics.optimize import optimize
from bot_analytics.reports.assemble import Report, build_report
from bot_analytics.reports.render import telegram_pieces, to_html, to_json, write
from bot_analytics.storage import db
from optimizer.synthetic import synthetic_data

from .conftest import RunningBot, make_settings, new_bot, rows
from .test_admin import echo_bot
from .test_optimize_db import store

START = datetime(2026, 1, 5, tzinfo=UTC)          # a Monday; the data cover four weeks
NOW = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)       # the Monday after, 09:00
WEEK = datetime(2026, 1, 26, tzinfo=UTC)           # the last whole week before NOW
ADMIN = 4242


@dataclass
class World:
    url: str
    engine: sa.Engine
    token: str
    bot_id: int
    settings: Settings


@pytest.fixture
def world(database_url: str, tmp_path: Path, emulator: TelegramEmulator) -> Any:
    """Four weeks of a shop bot's traffic (synthetic, with planted effects), rolled up
    daily and weekly, and an optimizer run."""
    token = emulator.add_bot("shop_bot")
    bot_id = int(token.split(":")[0])
    data = synthetic_data(300, days=28, seed=21, start=START)
    for frame in (data.interactions, data.purchases, data.members, data.blocks):
        frame["bot_id"] = bot_id
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    store(engine, data)
    if engine.dialect.name == "postgresql":
        # A fresh schema has no statistics until autovacuum's first analyze; without
        # them the planner chooses nested loops for the cohort queries.
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE interactions, conversions, members"))
    rollup_range(engine, "daily", START, START + timedelta(days=28))
    rollup_range(engine, "weekly", START, START + timedelta(days=28))
    settings = make_settings(database_url, tmp_path, admin={"enabled": True,
                                                              "admins": [ADMIN]})
    optimize(engine, settings, "default", start=START, end=START + timedelta(days=28),
             now=NOW)
    yield World(database_url, engine, token, bot_id, settings)
    engine.dispose()


def _count(url: str, sql: str, **params: Any) -> int:
    return int(rows(url, sql, **params)[0][0])


def test_report_holds_the_period_and_its_comparison(world: World) -> None:
    report = build_report(world.engine, world.settings, "default", "week", now=NOW)
    assert (report.start, report.end, report.bot_id) == (WEEK, NOW.replace(hour=0),
                                                         world.bot_id)
    assert report.title == "Weekly report, 2026-01-26 to 2026-02-01"
    summary = {r.metric: r for r in report.summary}
    # Counted again with SQL on the raw rows.
    week = _count(world.url, "SELECT count(*) FROM interactions WHERE ts >= :a AND ts < :b",
                  a=WEEK, b=WEEK + timedelta(days=7))
    before = _count(world.url, "SELECT count(*) FROM interactions WHERE ts >= :a AND ts < :b",
                    a=WEEK - timedelta(days=7), b=WEEK)
    assert summary["interactions"].value == week
    assert summary["interactions"].previous == before
    assert summary["interactions"].change == pytest.approx((week - before) / before)
    buys = _count(world.url, "SELECT count(*) FROM conversions WHERE ts >= :a AND ts < :b",
                  a=WEEK, b=WEEK + timedelta(days=7))
    assert summary["conversions"].value == buys
    run = rows(world.url, "SELECT result FROM optimization_runs")[0].result
    assert [r["title"] for r in report.recommendations] == \
        [r["title"] for r in json.loads(run)["recommendations"][:5]]
    assert report.unknown is not None and report.unknown.clusters
    assert "sell bikes" in {t for c in report.unknown.clusters for t in c.terms}
    assert [c.name for c in report.charts] == ["daily", "sentiment", "intents"]
    for chart in report.charts:
        with Image.open(io.BytesIO(chart.png)) as image:
            assert image.size == (1200, 750)
    # A period with nothing in it is said so.
    with pytest.raises(ValueError, match="has no interactions"):
        build_report(world.engine, world.settings, "default", "week",
                     start=datetime(2025, 1, 6, tzinfo=UTC))


def test_renderings(world: World, tmp_path: Path) -> None:
    report = build_report(world.engine, world.settings, "default", "week", now=NOW)
    pieces = telegram_pieces(report)
    texts = [p.text for p in pieces if p.text is not None]
    assert texts[0].startswith("<b>📊 Weekly report, 2026-01-26 to 2026-02-01</b>")
    assert all(len(t) <= 4096 for t in texts)
    assert [p.filename for p in pieces if p.photo is not None] == \
        ["daily.png", "sentiment.png", "intents.png"]
    page = to_html(report)
    assert page.count("data:image/png;base64,") == 3 and "<table>" in page
    files = write(report, tmp_path / "week.md")
    assert [f.name for f in files] == ["week.md", "week-daily.png", "week-sentiment.png",
                                       "week-intents.png"]
    assert "![Interactions and purchases by day](week-daily.png)" in files[0].read_text()
    data = json.loads(to_json(report))
    assert data["summary"][0]["metric"] == "interactions"
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        write(report, tmp_path / "week.pdf")


def test_a_long_report_is_split_within_telegram_limits() -> None:
    clusters = [MessageCluster(3, 0.01, ["a very long example message " * 8], ["term"])
                for _ in range(300)]
    report = Report("default", 1, "weekly", WEEK, WEEK + timedelta(days=7),
                    ["unknown"], unknown=UnknownReport(900, clusters))
    pieces = telegram_pieces(report)
    assert len(pieces) > 3
    assert all(p.text is not None and len(p.text) <= 4096 for p in pieces)
    assert sum(p.text.count("“") for p in pieces if p.text) == 300


async def test_scheduled_report_reaches_the_channel_once(world: World, tmp_path: Path,
                                                         emulator: TelegramEmulator) -> None:
    channel = emulator.channel("Team")
    closed = emulator.channel("Old team")
    emulator.remove_from_chat(world.token, closed["id"])
    settings = make_settings(world.url, tmp_path, reports={
        "weekly": {"chats": [closed["id"], channel["id"]], "period": "week"}})
    analytics = Analytics(settings, clock=lambda: NOW, name="rep")
    dp = echo_bot([])
    analytics.setup(dp)
    bot = new_bot(emulator, world.token)
    emulator.fail_next("sendPhoto", error_code=429,
                       description="Too Many Requests: retry after 1", retry_after=1)
    async with RunningBot(emulator, dp, [bot], analytics):
        await emulator.wait_for(lambda: analytics.scheduler is not None)
        assert "rep:report:weekly" in {j.id for j in analytics.scheduler.get_jobs()}
        await run_report("rep", "weekly")
        posted = emulator.messages_to(channel["id"])
        assert posted[0]["text"].startswith("<b>📊 Weekly report, 2026-01-26 to 2026-02-01")
        assert sum("photo" in m for m in posted) == 3
        health = analytics.health()
        assert health["deliveries"]["flood_waits"] == 1        # waited out, then sent
        assert health["deliveries"]["sent"] == 1
        assert health["deliveries"]["forbidden"] == 1
        assert "not a member" in health["deliveries"]["errors"][closed["id"]]
        assert health["jobs"]["failures"] == 0
        await run_report("rep", "weekly")                      # the same week again
        assert len(emulator.messages_to(channel["id"])) == len(posted)
    await analytics.close()
    states = {(r.chat_id, r.status) for r in rows(
        world.url, "SELECT chat_id, status FROM deliveries WHERE kind = 'report'")}
    assert states == {(channel["id"], "sent"), (closed["id"], "forbidden")}

    again = Analytics(settings, clock=lambda: NOW, name="rep")   # a restart
    dp2 = echo_bot([])
    again.setup(dp2)
    async with RunningBot(emulator, dp2, [new_bot(emulator, world.token)], again):
        await emulator.wait_for(lambda: again.scheduler is not None)
        await run_report("rep", "weekly")
    await again.close()
    assert len(emulator.messages_to(channel["id"])) == len(posted)   # not twice
    assert emulator.messages_to(closed["id"]) == []


async def test_a_delivery_cut_short_resumes(world: World, tmp_path: Path,
                                            emulator: TelegramEmulator) -> None:
    channel = emulator.channel("Team")
    settings = make_settings(world.url, tmp_path, reports={
        "weekly": {"chats": [channel["id"]], "sections": ["summary"]}})
    analytics = Analytics(settings, clock=lambda: NOW, name="cut")
    dp = echo_bot([])
    analytics.setup(dp)
    emulator.fail_next("sendPhoto", error_code=500, description="Internal Server Error")
    async with RunningBot(emulator, dp, [new_bot(emulator, world.token)], analytics):
        await emulator.wait_for(lambda: analytics.scheduler is not None)
        await run_report("cut", "weekly")
        first = emulator.messages_to(channel["id"])
        assert len(first) == 1 and analytics.health()["deliveries"]["failed"] == 1
        await run_report("cut", "weekly")   # resumes with the charts
        after = emulator.messages_to(channel["id"])
    await analytics.close()
    assert [("photo" in m) for m in after] == [False, True, True]


def _kpi(engine: sa.Engine, bot: int, day: date, metric: str, value: float,
         kind: str = "daily") -> dict[str, Any]:
    return {"tenant_id": "default", "bot_id": bot, "metric_category": "x",
            "metric_type": metric, "metric_value": value, "aggregation_period": kind,
            "period_start": datetime(day.year, day.month, day.day, tzinfo=UTC),
            "dimension": None, "sample_size": 1, "computed_at": NOW}


def _alert_data(database_url: str) -> sa.Engine:
    """Six weeks of daily KPIs with a weekly rhythm; the last day, a Monday, has twice
    the usual traffic and 8% errors; the last whole week's revenue fell 20%."""
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    first = date(2026, 1, 5)
    kpis = []
    for i in range(43):
        day = first + timedelta(days=i)
        base = 60.0 if day.weekday() >= 5 else 100.0
        wobble = (i * 7919) % 11 - 5
        kpis.append(_kpi(engine, 9, day, "interactions",
                         2 * base if i == 42 else base + wobble))
        kpis.append(_kpi(engine, 9, day, "error_rate", 0.08 if i == 42 else 0.01))
    kpis.append(_kpi(engine, 9, date(2026, 2, 2), "revenue", 1000.0, "weekly"))
    kpis.append(_kpi(engine, 9, date(2026, 2, 9), "revenue", 800.0, "weekly"))
    with engine.begin() as conn:
        conn.execute(sa.insert(KPI_METRICS), kpis)
    return engine


def test_alerts_for_anomalies_and_rules(database_url: str, tmp_path: Path) -> None:
    engine = _alert_data(database_url)
    settings = make_settings(database_url, tmp_path, alerts={
        "rules": ["error_rate > 0.05", "revenue week-over-week < -10%"]})
    last = date(2026, 2, 16)
    assert last.weekday() == 0
    days, series = daily_series(engine, "default", 9, ["interactions"], date(2025, 12, 1),
                                last)
    assert days[0] == date(2026, 1, 5)   # the series starts where the KPIs do
    assert series["interactions"][-1] == 200.0
    alerts = {a.key: a for a in check_day(engine, settings, "default", 9, last)}
    assert set(alerts) == {"anomaly:interactions", "anomaly:error_rate",
                           "rule:error_rate > 0.05"}
    assert "interactions</b> spike on 2026-02-16: 200" in alerts["anomaly:interactions"].text
    assert "8.0%" in alerts["rule:error_rate > 0.05"].text
    # The week-over-week rule is judged on the day its week ends (Sunday the 15th).
    sunday = {a.key: a for a in check_day(engine, settings, "default", 9, date(2026, 2, 15))}
    assert "rule:revenue week-over-week < -10%" in sunday
    assert "-20.0% week over week" in sunday["rule:revenue week-over-week < -10%"].text
    quiet = check_day(engine, settings, "default", 9, date(2026, 2, 10))
    assert quiet == []
    engine.dispose()


async def test_alerts_reach_the_admins_once(database_url: str, tmp_path: Path,
                                            emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    bot_id = int(token.split(":")[0])
    engine = _alert_data(database_url)
    with engine.begin() as conn:
        conn.execute(sa.update(KPI_METRICS).values(bot_id=bot_id))
    engine.dispose()
    settings = make_settings(database_url, tmp_path, admin={"enabled": True,
                                                             "admins": [ADMIN]},
                             alerts={"rules": ["error_rate > 0.05"]})
    at = datetime(2026, 2, 17, 0, 30, tzinfo=UTC)
    analytics = Analytics(settings, clock=lambda: at, name="al")
    dp = echo_bot([])
    analytics.setup(dp)
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics):
        await emulator.wait_for(lambda: analytics.scheduler is not None)
        assert "al:alerts" in {j.id for j in analytics.scheduler.get_jobs()}
        await run_alerts("al")
        await run_alerts("al")
    await analytics.close()
    texts = [m["text"] for m in emulator.messages_to(ADMIN)]
    assert len(texts) == 3 and any("spike on 2026-02-16" in t for t in texts)
    assert _count(database_url, "SELECT count(*) FROM deliveries WHERE kind = 'alert' "
                                "AND status = 'sent'") == 3


async def test_admin_commands_read_the_optimizer_and_export(
        world: World, emulator: TelegramEmulator, tmp_path: Path) -> None:
    analytics = Analytics(world.settings, clock=lambda: NOW)
    seen: list[str] = []
    dp = echo_bot(seen)
    analytics.setup(dp)
    admin = emulator.user("Ops", user_id=ADMIN)
    commands = ["/intents week", "/unknown month", "/segments", "/recommendations",
                "/report week", "/export interactions week csv", "/export kpis month jsonl",
                "/stats quarter", "/health", "/export nothing", "/intents decade"]
    async with RunningBot(emulator, dp, [new_bot(emulator, world.token)], analytics) as bot:
        for n, command in enumerate(commands, start=1):
            before = len(emulator.messages_to(ADMIN))
            admin.send(command)
            await bot.settle(n)
            await emulator.wait_for(lambda b=before: len(emulator.messages_to(ADMIN)) > b)
            if command.startswith("/report"):
                await emulator.wait_for(lambda b=before: len(emulator.messages_to(ADMIN))
                                        >= b + 4)
    await analytics.close()
    assert seen == []
    out = emulator.messages_to(ADMIN)
    text = "\n".join(m.get("text", "") for m in out)
    assert "Top intents, last week" in text and "By conversion" in text
    assert "unknown or unhandled messages in the last month" in text
    assert "<b>Segments</b> (optimizer run 1" in text and "high-value buyers" in text
    assert "<b>Recommendations</b> (optimizer run 1" in text
    assert "Weekly report, 2026-01-26 to 2026-02-01" in text
    assert "Quarter from 2025-10-01" in text or "No interactions in the quarter" in text
    assert "<b>Database</b>: " in text and "ms for a round trip" in text
    assert "Usage: /export interactions|kpis" in text
    assert "unknown period 'decade'" in text
    documents = [c for c in emulator.calls if c.ok and c.method == "sendDocument"]
    assert len(documents) == 2
    csv_file = documents[0].params["document"]
    assert csv_file["file_name"] == "interactions-week.csv"
    lines = csv_file["content"].decode().splitlines()
    week = _count(world.url, "SELECT count(*) FROM interactions WHERE ts >= :a AND ts < :b",
                  a=NOW - timedelta(days=7), b=NOW)
    assert lines[0].startswith("id,tenant_id,bot_id,update_id") and len(lines) == week + 1
    jsonl = documents[1].params["document"]["content"].decode().splitlines()
    assert all(json.loads(line)["tenant_id"] == "default" for line in jsonl) and jsonl
    photos = [c for c in emulator.calls if c.ok and c.method == "sendPhoto"]
    assert len(photos) >= 4    # /intents' chart and the report's three


def test_report_command(world: World, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database:\n  url: '{world.url}'\nwriter:\n  spool_path: "
                   f"'{tmp_path / 's'}'\n")
    out = tmp_path / "week.html"
    assert main(["-c", str(cfg), "report", "--start", "2026-01-26", "--out", str(out)]) == 0
    assert "wrote Weekly report, 2026-01-26 to 2026-02-01" in capsys.readouterr().out
    assert out.read_text().count("data:image/png;base64,") == 3
    assert main(["-c", str(cfg), "report", "--start", "2026-01-26", "--sections",
                 "summary"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Weekly report") and "## Anomalies" not in md
    assert main(["-c", str(cfg), "report", "--sections", "summary,gossip"]) == 2
    assert "unknown gossip" in capsys.readouterr().err
    assert main(["-c", str(cfg), "report", "--start", "2020-01-06"]) == 2
    assert "has no interactions" in capsys.readouterr().err
