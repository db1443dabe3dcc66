"""Shared fixtures.

``database_url`` runs a test on SQLite and, when ``BOT_ANALYTICS_TEST_DATABASE_URL`` is
set, on PostgreSQL as well, each test in a schema of its own. With the variable set, an
unreachable server fails the tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot_analytics import Analytics
from bot_analytics.config import Settings, parse_settings
from bot_analytics.emulator import TelegramEmulator

PG_URL = os.environ.get("BOT_ANALYTICS_TEST_DATABASE_URL")

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own BOT_ANALYTICS_DATABASE_URL must not redirect the tests.
    monkeypatch.delenv("BOT_ANALYTICS_DATABASE_URL", raising=False)


def _pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'analytics.sqlite3'}"
        return
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"BOT_ANALYTICS_TEST_DATABASE_URL is set but PostgreSQL is unreachable: "
                    f"{exc}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for tests: fast flushes, a spool in tmp_path, migrations applied."""
    data: dict[str, Any] = {
        "database": {"url": database_url, "auto_migrate": True},
        "writer": {"flush_interval": 0.05, "spool_path": str(tmp_path / "spool.jsonl"),
                   "backoff_initial": 0.01, "backoff_max": 0.05},
        "intents": {"rules": {"escalate": {"keywords": ["human", "operator"]},
                              "greeting": {"keywords": ["hello", "hi"]}},
                    "callback_prefixes": {"buy:": "purchase"}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_settings(data, "test settings")


def rows(database_url: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = await TelegramEmulator().start()
    try:
        yield emu
    finally:
        await emu.stop()


class RunningBot:
    """A real aiogram dispatcher polling the emulator over HTTP."""

    def __init__(self, emu: TelegramEmulator, dp: Any, bots: list[Any], analytics: Analytics):
        self.emu = emu
        self.dp = dp
        self.bots = bots
        self.analytics = analytics
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningBot:
        self.task = asyncio.create_task(self.dp.start_polling(
            *self.bots, allowed_updates=self.analytics.allowed_updates(self.dp),
            handle_signals=False, polling_timeout=1))
        await self.emu.wait_for(lambda: self.analytics.writer.running, timeout=10)
        return self

    async def settle(self, expected_events: int, timeout: float = 10.0) -> None:
        """Wait until ``expected_events`` updates were captured, then flush them."""
        def captured() -> bool:
            c = self.analytics.writer.counters
            return c.updates >= expected_events

        await self.emu.wait_for(captured, timeout)
        assert await self.analytics.flush(timeout)

    async def __aexit__(self, *exc: object) -> None:
        await self.dp.stop_polling()
        assert self.task is not None
        await self.task


def new_bot(emu: TelegramEmulator, token: str) -> Any:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession

    return Bot(token, session=AiohttpSession(api=emu.api_server()))
