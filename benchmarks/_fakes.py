"""A Bot API session answered in memory, for benchmarks (no network in the timing)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.types import Chat, Message

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemorySession(BaseSession):
    """Answers sendMessage with a message and everything else with True."""

    async def make_request(self, bot: Bot, method: TelegramMethod[Any],
                           timeout: int | None = None) -> Any:
        if method.__api_method__ == "sendMessage":
            return Message(message_id=1, date=NOW,
                           chat=Chat(id=int(method.chat_id), type="private"),  # type: ignore[attr-defined]
                           text=method.text)  # type: ignore[attr-defined]
        return True

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        pass
