"""The outer middleware on ``dp.update``: the hot path.

It reads a few attributes of the update, times the handler, and puts one small frozen
event on the writer's queue. Nothing here awaits I/O. The bot's own exceptions pass
through untouched; the plugin's own failures are logged and counted, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods.base import TelegramMethod

from ..events import InteractionEvent, MemberEvent, Skipped
from .context import OPT_COMMANDS, UpdateContext, current_update
from .extract import read_update

if TYPE_CHECKING:
    from ..plugin import Analytics

log = logging.getLogger("bot_analytics.capture")


class CaptureMiddleware(BaseMiddleware):
    def __init__(self, plugin: Analytics):
        self.plugin = plugin

    async def __call__(self, handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                       event: Any, data: dict[str, Any]) -> Any:
        t0 = perf_counter()
        plugin = self.plugin
        try:
            ctx = plugin._begin(event, data, t0)
        except Exception as error:
            ctx = plugin._failed_context(event, data, t0, error)
        data["analytics"] = ctx
        token = current_update.set(ctx)
        try:
            if plugin.opt_commands and ctx.command in OPT_COMMANDS:
                await plugin._answer_opt_command(ctx, ctx.command)
                result = None  # handled here; the bot's handlers don't see it
            else:
                result = await handler(event, data)
        except BaseException as error:
            current_update.reset(token)
            finish(plugin, ctx, UNHANDLED, error, perf_counter())
            raise
        current_update.reset(token)
        finish(plugin, ctx, result, None, perf_counter())
        return result


def finish(plugin: Analytics, ctx: UpdateContext, result: Any, error: BaseException | None,
           t_end: float) -> None:
    """Build the event for a handled update and queue it. Never raises."""
    try:
        facts = ctx.facts
        writer = plugin.writer
        if isinstance(facts, Skipped):
            c = writer.counters
            c.skipped += 1
            c.skip_reasons[facts.reason] = c.skip_reasons.get(facts.reason, 0) + 1
            return
        if facts.lifecycle is not None:
            writer.put(MemberEvent(ctx.tenant_id, ctx.bot_id, facts.member_id,
                                   facts.lifecycle, ctx.received, ctx.update_id,
                                   facts.chat_id))
            return
        if isinstance(result, TelegramMethod):
            # Answered as a webhook response: Telegram completes it after we return.
            ctx.note_reply(result, t_end)
        first = ctx.first_reply_at
        writer.put(InteractionEvent(
            ctx.tenant_id, ctx.bot_id, ctx.update_id, facts.event_type, ctx.received,
            facts.member_id, facts.chat_id, facts.chat_type, facts.language_code,
            facts.text, facts.command, facts.command_args, facts.callback_data,
            error is not None or result is not UNHANDLED,
            None if error is None else type(error).__name__,
            (t_end - ctx.t0) * 1000.0,
            ctx.response_text,
            None if first is None else (first - ctx.t0) * 1000.0,
            ctx.reply_count, ctx.escalated, ctx.intent,
        ))
    except Exception:
        plugin._capture_failed("recording update %s", getattr(ctx, "update_id", "?"))
