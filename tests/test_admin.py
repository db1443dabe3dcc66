"""Admin commands in the chat, through a real dispatcher and the offline Telegram: what
admins get, and that nobody else gets anything."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram import Dispatcher
from aiogram.types import Message

from bot_analytics import Analytics
from bot_analytics.admin.text import split_message
from bot_analytics.config import ConfigError, ExperimentSettings, parse_settings
from bot_analytics.emulator import TelegramEmulator
from bot_analytics.experiments import ExperimentDef
from bot_analytics.experiments import store as exp_store
from bot_analytics.kpis.rollup import rollup_range
from bot_analytics.storage import db
from bot_analytics.storage.queries import ASSIGNMENTS, BatchStore

from .conftest import RunningBot, make_settings, new_bot, rows
from .test_kpis import _visit

ADMIN = 4242
COMMANDS = ["/a_help", "/a_stats week", "/a_kpi engagement week", "/a_ab list",
            "/a_ab show pitch", "/a_health", "/a_kpi nonsense"]
#: The rest, which non-admins must not get either (tests/test_reports.py has admins' use).
MORE_COMMANDS = ["/a_stats quarter", "/a_intents week", "/a_unknown month", "/a_segments",
                 "/a_recommendations", "/a_report week", "/a_export interactions week",
                 "/a_export kpis month jsonl", "/a_ab stop pitch"]


def seed(database_url: str, bot_id: int) -> datetime:
    """Two weeks of visits by a few members, rolled up; an experiment with members."""
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    start = datetime(2026, 3, 2, tzinfo=UTC)   # a Monday
    visits = [{**_visit(i, m, start + timedelta(days=d, hours=m)), "bot_id": bot_id,
               "tenant_id": "default"}
              for i, (d, m) in enumerate((d, m) for d in range(14) for m in range(1, 4 + d % 3))]
    BatchStore(engine, timedelta(minutes=30)).write(visits, [], [], [])
    rollup_range(engine, "daily", start, start + timedelta(days=14))
    rollup_range(engine, "weekly", start, start + timedelta(days=14))
    exp = ExperimentDef("default", "pitch", ExperimentSettings.model_validate(
        {"variants": [{"name": "a"}, {"name": "b"}]}))
    with engine.begin() as conn:
        exp_store.save_definition(conn, exp, start)
        conn.execute(sa.insert(ASSIGNMENTS), [{
            "tenant_id": "default", "experiment": "pitch", "member_id": m, "bot_id": bot_id,
            "variant": exp.assign(m), "first_exposed_at": start + timedelta(days=m % 10),
            "last_exposed_at": start + timedelta(days=m % 10), "exposures": 1}
            for m in range(1, 60)])
    engine.dispose()
    return start


def echo_bot(seen: list[str]) -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        seen.append(message.text or "")
        await message.answer("echo")

    return dp


def sent_to(emulator: TelegramEmulator, chat_id: int) -> list[Any]:
    return [c for c in emulator.calls if c.ok and c.method in ("sendMessage", "sendPhoto")
            and int(c.params.get("chat_id", 0)) == chat_id]


async def test_admins_get_numbers_and_charts(database_url: str, tmp_path: Path,
                                             emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    bot_id = int(token.split(":")[0])
    seed(database_url, bot_id)
    settings = make_settings(database_url, tmp_path,
                             admin={"enabled": True, "admins": [ADMIN], "prefix": "a_"})
    analytics = Analytics(settings)
    seen: list[str] = []
    dp = echo_bot(seen)
    analytics.setup(dp)
    admin = emulator.user("Ops", user_id=ADMIN)
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        for n, command in enumerate(COMMANDS, start=1):
            before = len(sent_to(emulator, ADMIN))
            admin.send(command)
            await running.settle(n)
            await emulator.wait_for(lambda b=before: len(sent_to(emulator, ADMIN)) > b)
        await analytics.flush()
    await analytics.close()

    assert seen == []   # the bot's own handler saw none of the admin commands
    texts = [c.params.get("text", "") for c in sent_to(emulator, ADMIN)
             if c.method == "sendMessage"]
    joined = "\n".join(texts)
    assert "/a_stats [day|week|month|quarter]" in joined                   # help
    assert "Weekly from 2026-03-09" in joined and "interactions" in joined  # stats
    assert "retention_rate" in joined                                      # kpi engagement
    assert "pitch</b>: running, 59 members" in joined                      # ab list
    assert "Decision: no winner yet" in joined                             # ab show
    assert "Capture pipeline" in joined                                    # health
    assert re.search(r"<b>Sentiment</b>: (helper process (not )?running, started 0 times, "
                     r"0 failures|scored in the writer's thread)\n", joined)
    assert "Usage: /a_kpi cx|ops|engagement|revenue" in joined             # a wrong family
    assert all(len(t) <= 4096 for t in texts)
    assert all(c.params.get("parse_mode") == "HTML" for c in sent_to(emulator, ADMIN)
               if c.method == "sendMessage")
    photos = [c.params["photo"]["content"] for c in sent_to(emulator, ADMIN)
              if c.method == "sendPhoto"]
    assert len(photos) == 2   # the daily chart of /stats and the experiment's chart
    from PIL import Image

    for png in photos:
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (1200, 750)
    # Admin commands are not part of the bot's conversation.
    assert rows(database_url, "SELECT count(*) AS n FROM interactions "
                              "WHERE text LIKE '/a_%'")[0].n == 0


async def test_nobody_else_gets_anything(database_url: str, tmp_path: Path,
                                         emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    seed(database_url, int(token.split(":")[0]))
    settings = make_settings(database_url, tmp_path,
                             admin={"enabled": True, "admins": [ADMIN], "prefix": "a_"})
    analytics = Analytics(settings)
    seen: list[str] = []
    dp = echo_bot(seen)
    analytics.setup(dp)
    stranger = emulator.user("Eve", user_id=666)
    admin = emulator.user("Ops", user_id=ADMIN)
    group = emulator.group("Team")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        n = 0
        for command in COMMANDS + MORE_COMMANDS:
            stranger.send(command)                  # not an admin
            admin.send(command, chat=group)         # an admin, but in a group
            n += 2
        # Forged: the admin's id posting on behalf of a channel.
        forged = admin._message(None, text="/a_stats", sender_chat={
            "id": -1001, "type": "channel", "title": "x"})
        forged["entities"] = [{"type": "bot_command", "offset": 0, "length": 8}]
        emulator.inject(token, "message", forged)
        n += 1
        await running.settle(n)
    await analytics.close()
    # Every command reached the bot's own handler, and only "echo" went out.
    assert len(seen) == n
    replies = [c.params.get("text") for c in emulator.calls
               if c.ok and c.method in ("sendMessage", "sendPhoto")]
    assert set(replies) == {"echo"}
    assert not [c for c in emulator.calls if c.method == "sendDocument"]
    assert rows(database_url, "SELECT stopped_at FROM experiments")[0].stopped_at is None


def test_admin_settings_and_message_splitting() -> None:
    with pytest.raises(ConfigError, match="admins lists nobody"):
        parse_settings({"admin": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"admin\.prefix"):
        parse_settings({"admin": {"prefix": "A-"}})
    text = "<b>head</b>\n<pre>" + "\n".join(f"row {i:04d} value" for i in range(2000)) + \
        "</pre>\ntail"
    parts = split_message(text)
    assert len(parts) > 1 and all(len(p) <= 4096 for p in parts)
    assert all(p.count("<pre>") == p.count("</pre>") for p in parts)
    # Nothing lost or added but the tags that close and reopen a cut <pre> block.
    glued = "\n".join(parts).replace("</pre>\n<pre>", "\n")
    assert glued == text
