"""The request middleware on a bot's session: ties each request to the update being
handled (through a contextvar) and records when it completed. Which requests answer the
update is worked out later, in the writer thread."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from .context import current_update


async def reply_middleware(make_request: Any, bot: Any, method: Any) -> Any:
    """The request middleware: a plain function rather than a ``BaseRequestMiddleware``
    instance, for the reason :func:`.middleware.capture_middleware` gives."""
    ctx = current_update.get()
    response = await make_request(bot, method)
    # Only requests completed while the handler runs: a task it started may outlive it.
    if ctx is not None and ctx.t_end is None:
        ctx.note_request(method, perf_counter())  # never raises
    return response
