"""Posting reports and alerts to Telegram chats: once per period and chat, flood control
waited out, a chat the bot may not post in noted rather than retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..storage.models import Delivery

log = logging.getLogger("bot_analytics.reports")

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]

#: Tries of one message under flood control before the delivery is left for next time.
FLOOD_TRIES = 5


@dataclass(frozen=True)
class Piece:
    """One message: HTML text, or a PNG picture with an HTML caption."""

    text: str | None = None
    photo: bytes | None = None
    caption: str | None = None
    filename: str = "chart.png"


@dataclass
class DeliveryCounters:
    sent: int = 0
    failed: int = 0
    forbidden: int = 0
    skipped: int = 0
    flood_waits: int = 0
    #: chat id -> the last error there, for /health.
    errors: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    tenant_id: str
    kind: str            #: report or alert
    name: str
    period_start: datetime
    chat_id: int


def _state(engine: Engine, t: Target) -> tuple[str, int, int] | None:
    d = DELIVERIES.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(d.status, d.parts_sent, d.attempts).where(
            d.tenant_id == t.tenant_id, d.kind == t.kind, d.name == t.name,
            d.period_start == t.period_start, d.chat_id == t.chat_id)).first()
    return None if row is None else (row[0], int(row[1]), int(row[2]))


def _save(engine: Engine, t: Target, status: str, parts: int, attempts: int, now: datetime,
          error: str | None) -> None:
    d = DELIVERIES.c
    key = [d.tenant_id == t.tenant_id, d.kind == t.kind, d.name == t.name,
           d.period_start == t.period_start, d.chat_id == t.chat_id]
    values = {"status": status, "parts_sent": parts, "attempts": attempts, "updated_at": now,
              "error": error}
    with engine.begin() as conn:
        if conn.execute(sa.update(DELIVERIES).where(*key).values(**values)).rowcount == 0:
            conn.execute(sa.insert(DELIVERIES).values(
                tenant_id=t.tenant_id, kind=t.kind, name=t.name, period_start=t.period_start,
                chat_id=t.chat_id, **values))


async def send_piece(bot: Any, chat_id: int, piece: Piece) -> None:
    from aiogram.types import BufferedInputFile

    if piece.photo is not None:
        await bot.send_photo(chat_id, BufferedInputFile(piece.photo, piece.filename),
                             caption=piece.caption, parse_mode="HTML")
    else:
        await bot.send_message(chat_id, piece.text or "", parse_mode="HTML")


async def deliver(engine: Engine, bot: Any, target: Target, pieces: Sequence[Piece], *,
                  now: datetime, counters: DeliveryCounters,
                  run: Callable[..., Awaitable[Any]] | None = None,
                  max_flood_wait: float = 60.0,
                  sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> str:
    """Send ``pieces`` to ``target.chat_id`` unless that was done for this period.
    Returns ``sent``, ``skipped`` (done before), ``failed`` or ``forbidden``. Database
    work goes through ``run`` (the plugin's writer thread) when given."""
    from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter

    async def db(fn: Callable[..., Any], *args: Any) -> Any:
        if run is not None:
            return await run(fn, *args)
        return await asyncio.to_thread(fn, *args)

    state = await db(_state, engine, target)
    if state is not None and state[0] in ("sent", "forbidden"):
        counters.skipped += 1
        return "skipped"
    done, attempts = (state[1], state[2] + 1) if state is not None else (0, 1)
    await db(_save, engine, target, "sending", done, attempts, now, None)
    try:
        for piece in pieces[done:]:
            for attempt in range(FLOOD_TRIES):
                try:
                    await send_piece(bot, target.chat_id, piece)
                    break
                except TelegramRetryAfter as flood:
                    if flood.retry_after > max_flood_wait or attempt == FLOOD_TRIES - 1:
                        raise
                    counters.flood_waits += 1
                    log.info("flood control in chat %s: waiting %s s", target.chat_id,
                             flood.retry_after)
                    await sleep(flood.retry_after)
            done += 1
    except TelegramForbiddenError as error:
        counters.forbidden += 1
        message = f"the bot may not post here: {error.message}"
        counters.errors[target.chat_id] = message
        log.warning("bot-analytics: %s %r not delivered to chat %s: %s", target.kind,
                    target.name, target.chat_id, message)
        await db(_save, engine, target, "forbidden", done, attempts, now, message)
        return "forbidden"
    except Exception as error:
        counters.failed += 1
        message = f"{type(error).__name__}: {error}"[:500]
        counters.errors[target.chat_id] = message
        log.warning("bot-analytics: %s %r to chat %s stopped after %d of %d messages: %s",
                    target.kind, target.name, target.chat_id, done, len(pieces), message)
        await db(_save, engine, target, "failed", done, attempts, now, message)
        return "failed"
    counters.sent += 1
    counters.errors.pop(target.chat_id, None)
    await db(_save, engine, target, "sent", done, attempts, now, None)
    return "sent"
