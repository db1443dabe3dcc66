"""The request middleware on a bot's session: ties each reply to the update being
handled (through a contextvar) and records when it completed."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware

from .context import current_update

if TYPE_CHECKING:
    from ..plugin import Analytics


class ReplyMiddleware(BaseRequestMiddleware):
    def __init__(self, plugin: Analytics):
        self.plugin = plugin

    async def __call__(self, make_request: Any, bot: Any, method: Any) -> Any:
        ctx = current_update.get()
        response = await make_request(bot, method)
        if ctx is not None:
            try:
                ctx.note_reply(method, perf_counter())
            except Exception:
                self.plugin._capture_failed("recording a reply (%s)",
                                            getattr(method, "__api_method__", "?"))
        return response
