"""The outer middleware on ``dp.update``: the hot path.

It times the handler and puts one small immutable record on the writer's queue; the
update itself is read later, in the writer thread. Nothing here awaits I/O. The bot's
own exceptions pass through untouched; the plugin's own failures are logged and
counted, never raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods.base import TelegramMethod

from ..events import Captured
from ..feedback import Surveys
from .context import OPT_COMMANDS, UpdateContext, current_update

if TYPE_CHECKING:
    from ..plugin import Analytics


class CaptureMiddleware(BaseMiddleware):
    def __init__(self, plugin: Analytics):
        self.plugin = plugin

    async def __call__(self, handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                       event: Any, data: dict[str, Any]) -> Any:
        t0 = perf_counter()
        plugin = self.plugin
        try:
            bot = data["bot"]
            ident = plugin._bots.get(bot) or plugin._bot_identity(bot)
            ctx = UpdateContext(plugin, event, bot, ident[0], ident[1], t0, plugin._now())
        except Exception as error:
            ctx = plugin._failed_context(event, data.get("bot"), t0, error)
        data["analytics"] = ctx
        if plugin.admin_router is not None:
            message = event.message
            if message is not None and message.text and message.text.startswith("/") \
                    and await plugin._admin_command(message, data):
                plugin.writer.counters.updates += 1
                return None  # an admin command: answered, not part of the conversation
        if Surveys.is_answer(event):
            # A rating for the plugin's own survey: stored in `feedback`, not an
            # interaction of the bot's conversation, and not for the bot's handlers.
            await plugin._answer_survey(ctx)
            plugin.writer.counters.updates += 1
            return None
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
        t_end = perf_counter()
        current_update.reset(token)
        finish(plugin, ctx, result, None, t_end)
        return result


def finish(plugin: Analytics, ctx: UpdateContext, result: Any, error: BaseException | None,
           t_end: float) -> None:
    """Queue the record of a handled update. Never raises."""
    plugin.writer.counters.updates += 1
    try:
        if result is not None and result is not UNHANDLED and isinstance(result,
                                                                         TelegramMethod):
            # Answered as a webhook response: Telegram completes it after we return.
            ctx.note_reply(result, t_end)
        first = ctx.first_reply_at
        t0 = ctx.t0
        plugin.writer.put(Captured(
            ctx.update, ctx.bot_id, ctx.tenant_id, ctx.received,
            error is not None or result is not UNHANDLED,
            None if error is None else type(error).__name__,
            (t_end - t0) * 1000.0, ctx.first_reply,
            None if first is None else (first - t0) * 1000.0,
            ctx.reply_count, ctx.escalated, ctx.intent))
        if ctx.conversions:
            for conversion in ctx.conversions:
                plugin.writer.put(conversion)
        if plugin.surveys.active:
            plugin.surveys.after_update(ctx)
    except Exception:
        plugin._capture_failed("recording update %s", getattr(ctx.update, "update_id", "?"))
