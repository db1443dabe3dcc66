"""The request middleware on a bot's session: ties each request to the update being
handled (through a contextvar) and records when it completed. Which requests answer the
update is worked out later, in the writer thread."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from .context import current_update
from .extract import read_request


async def reply_middleware(make_request: Any, bot: Any, method: Any) -> Any:
    """The request middleware: a plain function rather than a ``BaseRequestMiddleware``
    instance, for the reason :func:`.middleware.capture_middleware` gives. An update's
    first request, the usual handler's only one, is read here; the others go through
    :meth:`~.context.UpdateContext.note_request`."""
    ctx = current_update.get()
    response = await make_request(bot, method)
    # Only requests completed while the handler runs: a task it started may outlive it.
    if ctx is not None and ctx.t_end is None:
        if ctx.r_at is None:
            try:
                fields = method.__dict__
                text = fields.get("text")
                chat = fields.get("chat_id")
                if text and chat is not None:
                    # A message to a chat: what read_request() reads, without the call.
                    ctx.r_method = method.__api_method__
                    ctx.r_chat = chat
                    ctx.r_text = text
                    ctx.r_at = perf_counter()
                else:
                    ctx.r_method, ctx.r_chat, ctx.r_text, ctx.r_at = read_request(
                        method, perf_counter())
            except Exception:
                ctx._failed("reading a request made for update")
        else:
            ctx.note_request(method, perf_counter())  # never raises
    return response
