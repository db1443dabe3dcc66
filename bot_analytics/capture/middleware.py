"""The outer middleware on ``dp.update``: the hot path.

It times the handler and puts the update's context on the writer's queue, once the
context has read what the writer needs of the update and let go of it (the rest, intents,
sentiment and the insert, happens in the writer's thread). Nothing here awaits I/O. The bot's own
exceptions pass through untouched; the plugin's own failures are logged and counted,
never raised.

Also here: the screening middlewares on ``dp.callback_query`` and ``dp.message``, which
take the updates the plugin answers itself before the bot's handlers see them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods.base import TelegramMethod

from ..feedback import Surveys
from .context import OPT_COMMANDS, UpdateContext, current_update, new_context

if TYPE_CHECKING:
    from ..plugin import Analytics

_new = object.__new__

#: What aiogram calls an outer middleware with: the next handler, the event, the data.
Middleware = Callable[[Callable[[Any, dict[str, Any]], Awaitable[Any]], Any, dict[str, Any]],
                      Awaitable[Any]]


def capture_middleware(plugin: Analytics) -> Middleware:
    """The outer middleware of ``plugin``, for ``dp.update.outer_middleware()``.

    A plain function rather than a :class:`aiogram.BaseMiddleware` instance: aiogram
    calls each middleware through ``functools.partial``, which calls a function
    directly but an object's ``__call__`` only after looking the method up on its
    class and building a tuple of the arguments. Counted with callgrind, objects for
    this middleware and the request middleware cost 2,000 to 4,000 machine
    instructions more per update than functions (``docs/hot-path.md``).

    The usual update (from a bot seen before, no custom clock, no surveys, a queue
    neither full nor due for a flush) takes a path written out in this one function,
    with what it reads from the plugin bound here once: every function call and
    attribute lookup it avoids is paid on each update. Everything else goes through
    :func:`_context` and :func:`finish`, which handle all cases."""
    writer = plugin.writer
    counters = writer.counters
    queue = writer._buf
    bots = plugin._bots
    # Neither a custom clock to read nor surveys to note the update for.
    plain = plugin._custom_clock is None and not plugin.surveys.active
    room = writer.quiet_room
    # The bot of the last update and its identity. Most processes run one bot: comparing
    # with it spares the dict lookup and id(), for which CPython raises an audit event.
    last_bot: Any = None
    last_ident: tuple[int, str] | None = None

    async def capture(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                      event: Any, data: dict[str, Any]) -> Any:
        nonlocal last_bot, last_ident
        t0 = perf_counter()
        bot = data.get("bot")
        if bot is last_bot:
            ident = last_ident
        else:
            ident = bots.get(id(bot))
            if ident is not None:
                last_bot, last_ident = bot, ident
        if ident is not None and plain:  # what new_context() does, without the call
            ctx = _new(UpdateContext)
            ctx._plugin = plugin
            ctx.update = event
            ctx.bot = bot
            ctx.ident = ident
            ctx.t0 = t0
            ctx.t_end = None
            ctx.r_at = None
            ctx._marks = None
        else:
            ctx = _context(plugin, event, bot, ident, t0)
        data["analytics"] = ctx
        token = current_update.set(ctx)
        try:
            result = await handler(event, data)
        except BaseException as error:
            ctx.t_end = perf_counter()
            current_update.reset(token)
            ctx.marks.error = type(error).__name__
            finish(plugin, ctx)
            raise
        ctx.t_end = perf_counter()
        current_update.reset(token)
        if result is not None:
            if result is UNHANDLED:
                ctx.marks.handled = False
            elif result is SCREENED:  # answered by the plugin: not an interaction
                counters.updates += 1
                return None
            elif isinstance(result, TelegramMethod):
                # Answered as a webhook response: Telegram completes it after we return.
                ctx.note_request(result, ctx.t_end)
        if plain and len(queue) < room and writer._task is not None:
            counters.updates += 1
            # Let go of the update, so that its objects go with the bot's rather than
            # wait for the writer's batch: what detach() does, written out for a message
            # from a person that is not a payment, whose Facts the writer makes.
            try:
                msg = event.message
                if msg is not None and msg.sender_chat is None and \
                        msg.successful_payment is None and \
                        (user := msg.from_user) is not None and not user.is_bot:
                    chat = msg.chat
                    ctx._read = (user.id, chat.id, chat.type, user.language_code, msg.text,
                                 msg.caption)
                    ctx._update_id = event.update_id
                    ctx.update = None
                else:
                    ctx.detach()
            except Exception:
                ctx.detach()  # never raises; keeps an update it cannot read
            queue.append(ctx)  # what Writer.put() does when it neither drops nor wakes
        else:
            finish(plugin, ctx)
        return result

    return capture


def _context(plugin: Analytics, update: Any, bot: Any, ident: tuple[int, str] | None,
             t0: float) -> UpdateContext:
    """The context of any update, for the cases the middleware's own path leaves out: a
    bot seen for the first time (``ident`` None), a custom clock, no bot at all. Never
    raises."""
    try:
        if bot is None:
            raise KeyError("the handler data has no bot")
        ctx = new_context(plugin, update, bot, ident or plugin._bot_identity(bot), t0)
        if plugin._custom_clock is not None:
            ctx.marks.received = plugin._custom_clock()
    except Exception as error:
        ctx = plugin._failed_context(update, bot, t0, error)
    return ctx


class _Screened:
    """What a screening middleware returns for an update the plugin answered itself and
    does not record (an admin command, a survey answer)."""

    def __repr__(self) -> str:
        return "SCREENED"


#: The capture middleware counts an update whose result this is, does not record it,
#: and returns None to aiogram.
SCREENED: Any = _Screened()


async def screen_callbacks(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                           query: Any, data: dict[str, Any]) -> Any:
    """The outer middleware on ``dp.callback_query``: a rating for the plugin's own
    survey is stored in ``feedback``, is not an interaction of the bot's conversation and
    does not reach the bot's handlers.

    On ``dp.callback_query`` rather than in the capture middleware, so that other updates
    never read ``update.callback_query``: pydantic models define ``__getattr__``, which
    takes each read of a field off the interpreter's fast path and through the type's
    method cache, and through the class's bases when that misses. Timed in a loop, the
    capture middleware took 1.8 µs a call with that read and 1.1 µs without it
    (``docs/hot-path.md``)."""
    ctx = current_update.get()
    if ctx is not None and Surveys.is_answer(ctx.update):
        await ctx._plugin._answer_survey(ctx)
        return SCREENED
    return await handler(query, data)


async def screen_messages(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                          message: Any, data: dict[str, Any]) -> Any:
    """The outer middleware on ``dp.message`` when the plugin answers commands itself:
    admin commands (answered, not recorded) and the end user's /optout and /optin
    (answered and recorded, with the answer as the update's reply)."""
    ctx = current_update.get()
    text = message.text
    if ctx is None or not text or not text.startswith("/"):
        return await handler(message, data)
    plugin = ctx._plugin
    if plugin.admin_router is not None and \
            await plugin._admin_command(message, data):
        return SCREENED  # an admin command: answered, not part of the conversation
    if plugin.opt_commands and ctx.command in OPT_COMMANDS:
        try:
            await plugin._answer_opt_command(ctx, ctx.command)
        except Exception:
            plugin._capture_failed("answering %s", ctx.command)
        return None  # recorded as the interaction it is; the bot's handlers don't see it
    return await handler(message, data)


def finish(plugin: Analytics, ctx: UpdateContext) -> None:
    """Queue the context of an update whose handler is done. Never raises."""
    writer = plugin.writer
    writer.counters.updates += 1
    if plugin.surveys.active:  # before detach(): it reads the update
        try:
            plugin.surveys.after_update(ctx)
        except Exception:
            ctx._failed("noting for surveys update")
    ctx.detach()
    try:
        writer.put(ctx)
    except Exception:
        ctx._failed("recording update")
