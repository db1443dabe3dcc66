"""The per-update context handlers receive as ``analytics``."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..events import Captured, ConversionEvent, Skipped, conversion_event
from .extract import (
    Facts,
    MessageRead,
    Request,
    facts_target,
    is_reply,
    message_facts,
    read_request,
    read_update,
    reply_target,
    reply_text,
    update_id_of,
)

if TYPE_CHECKING:
    from ..experiments import Variant
    from ..plugin import Analytics

log = logging.getLogger("bot_analytics")

_MAX_INTENT = 64
#: Requests kept unread per update; a handler that sends more (a broadcast) has them
#: read as it goes rather than held until the writer reads them.
_MAX_PENDING = 64
_NO_REPLIES: tuple[int, str | None, float | None] = (0, None, None)

#: The update being handled in this task; the request middleware ties replies to it.
current_update: ContextVar[UpdateContext | None] = ContextVar("bot_analytics_update",
                                                              default=None)

#: End-user privacy commands answered by the plugin (privacy.optout_commands).
OPT_COMMANDS = frozenset({"/optout", "/optin"})
OPTED_OUT = "You will no longer be included in this bot's analytics. Send /optin to undo."
OPTED_IN = "You are included in this bot's analytics again. Send /optout to stop."


class Marks:
    """What only some updates have: a handler's marks, an error, an unhandled update, more
    than one request. Kept apart from :class:`UpdateContext`, whose hot-path part stays
    small: every context waits in the writer's queue until its batch is written."""

    __slots__ = ("conversions", "error", "escalated", "facts", "handled", "intent",
                 "received", "replies", "requests")

    def __init__(self) -> None:
        self.escalated = False
        self.intent: str | None = None
        #: Conversions tracked while handling; stored right after this interaction so
        #: that attribution finds it.
        self.conversions: list[ConversionEvent] | None = None
        self.error: str | None = None  # the class of the exception the handler raised
        self.handled = True  # False when no handler took the update
        #: The time from a custom clock; None: the writer derives it from ``t0``.
        self.received: datetime | None = None
        self.facts: Facts | Skipped | None = None
        #: Requests after the first, not yet read by ``replies()``.
        self.requests: list[Request] | None = None
        self.replies = _NO_REPLIES  # what the requests read so far came to


_new = object.__new__


def new_context(plugin: Analytics, update: Any, bot: Any, ident: tuple[int, str],
                t0: float) -> UpdateContext:
    """The context of an update the middleware has just taken. A function rather than
    ``UpdateContext.__init__``: calling a class with an ``__init__`` costs the hot path
    a nested interpreter call, this does not."""
    ctx = _new(UpdateContext)
    ctx._plugin = plugin
    ctx.update = update
    ctx.bot = bot
    ctx.ident = ident  # (bot id, tenant)
    # When the middleware took the update (perf_counter) and, once the handler is done,
    # when it finished.
    ctx.t0 = t0
    ctx.t_end = None
    # The first request the bot completed while the handler ran, field by field (method
    # name, chat, text, perf_counter): no tuple waits in the queue for the usual handler,
    # which makes one. r_at is None when there is none, and the other r_ slots are then
    # not set. Further requests wait in marks.requests. Which of them answer this update
    # is worked out in the writer.
    ctx.r_at = None
    ctx._marks = None
    return ctx


class UpdateContext:
    """What the plugin knows about the update being handled, and what the handler can
    tell it. Injected into handler data under the key ``analytics``.

    In a handler::

        async def on_message(message: Message, analytics: UpdateContext) -> None:
            if wants_human(message.text):
                analytics.mark_escalated()
    """

    __slots__ = ("_marks", "_plugin", "_read", "_update_id", "bot", "ident", "r_at", "r_chat",
                 "r_method", "r_text", "t0", "t_end", "update")
    # Made by new_context(), and for the usual update by the capture middleware itself,
    # which set every slot but r_method, r_chat and r_text (a slot added here is set in
    # both): those are set with r_at, by the first request.
    _plugin: Analytics
    #: The aiogram Update while the update is handled; None once :meth:`detach` (or the
    #: capture middleware, for the usual message) has read what the writer needs of it
    #: (``_read``, ``_update_id``, set only then; see :meth:`_read_facts`).
    update: Any
    _read: Facts | Skipped | MessageRead
    _update_id: int
    bot: Any
    ident: tuple[int, str]  #: (bot id, tenant)
    t0: float  #: when the middleware took the update (``perf_counter``)
    t_end: float | None  #: when the handler was done
    r_method: str
    r_chat: Any
    r_text: Any
    r_at: float | None
    _marks: Marks | None

    @property
    def marks(self) -> Marks:
        """The rarer facts of this update (created on first use)."""
        marks = self._marks
        if marks is None:
            marks = self._marks = Marks()
        return marks

    @property
    def bot_id(self) -> int:
        return self.ident[0]

    @property
    def tenant_id(self) -> str:
        return self.ident[1]

    @property
    def handled(self) -> bool:
        """False when no handler took the update (known once the handler is done)."""
        return self._marks is None or self._marks.handled

    @property
    def escalated(self) -> bool:
        return self._marks is not None and self._marks.escalated

    @property
    def intent(self) -> str | None:
        """The intent a handler set with :meth:`set_intent`, if any."""
        return None if self._marks is None else self._marks.intent

    @property
    def error(self) -> str | None:
        """The class of the exception the handler raised, if it did."""
        return None if self._marks is None else self._marks.error

    @property
    def conversions(self) -> list[ConversionEvent] | None:
        return None if self._marks is None else self._marks.conversions

    def detach(self) -> None:
        """Read what the writer needs of the update and let go of it: called once the
        handler is done, before the context waits in the writer's queue. An update's
        objects held until the writer's batch outlive the garbage collector's younger
        generations, and a bot whose updates do that collects many times as often,
        fully every few thousand updates (``benchmarks/bench_gc.py``). Never raises: an
        update that cannot be read is kept, for the writer to read and count. Facts a
        handler has already read (:attr:`facts`) are not read again; a ``Skipped`` there
        may stand for a context the plugin could not make, so the update is read then."""
        update = self.update
        if update is None:
            return
        known = None if self._marks is None else self._marks.facts
        try:
            self._read = known if isinstance(known, Facts) else read_update(update)
            self._update_id = update.update_id
        except Exception:
            return
        self.update = None

    def _read_facts(self) -> Facts | Skipped:
        """What was read of the update when it was let go, as Facts (the capture
        middleware keeps the usual message's as a :data:`~.extract.MessageRead`)."""
        read = self._read
        if type(read) is tuple:
            read = self._read = message_facts(read)
        return read  # type: ignore[return-value]

    def record(self, wall_offset: float) -> Captured:
        """What the writer stores of this update once its handler is done.
        ``wall_offset`` turns ``perf_counter`` readings into epoch seconds."""
        t0, marks = self.t0, self._marks
        received = None if marks is None else marks.received
        count, text, first = self.replies()
        bot_id, tenant_id = self.ident
        update = self.update
        return Captured(
            update, bot_id, tenant_id,
            received if received is not None else t0 + wall_offset,
            self.handled, self.error, (self.t_end - t0) * 1000.0,  # type: ignore[operator]
            text, None if first is None else (first - t0) * 1000.0, count,
            self.escalated, self.intent,
            *((self._read_facts(), self._update_id) if update is None else ()))

    def _late(self, what: str) -> bool:
        """True when the handler has already returned: the interaction is on its way to
        the database and no longer changes. Warns once per method and plugin."""
        if self.t_end is None:
            return False
        warned = self._plugin._late_warnings
        if what not in warned:
            warned.add(what)
            log.warning("bot-analytics: %s() was called after the handler of update %s "
                        "returned; it is not recorded (call it before returning)", what,
                        self.update_id)
        return True

    # -- what handlers call ----------------------------------------------------------------
    @property
    def plugin(self) -> Analytics:
        """The :class:`~bot_analytics.Analytics` instance."""
        return self._plugin

    @property
    def facts(self) -> Facts | Skipped:
        """What the update says (read on first use: the hot path does not need it)."""
        marks = self.marks
        if marks.facts is None:
            marks.facts = read_update(self.update) if self.update is not None else \
                self._read_facts()
        return marks.facts

    @property
    def update_id(self) -> int:
        update = self.update
        return int(update.update_id if update is not None else self._update_id)

    @property
    def member_id(self) -> int | None:
        """The Telegram user id of the person behind this update, if any."""
        facts = self.facts
        return facts.member_id if isinstance(facts, Facts) else None

    @property
    def chat_id(self) -> int | None:
        facts = self.facts
        return facts.chat_id if isinstance(facts, Facts) else None

    @property
    def command(self) -> str | None:
        """The command of this update (``/start``), if it is one."""
        facts = self.facts
        return facts.command if isinstance(facts, Facts) else None

    @property
    def recorded(self) -> bool:
        """False when this update is not an interaction (a channel post, a bot...)."""
        facts = self.facts
        return isinstance(facts, Facts) and facts.lifecycle is None

    def mark_escalated(self) -> None:
        """Mark this interaction as handed off to a human."""
        if not self._late("mark_escalated"):
            self.marks.escalated = True

    def set_intent(self, name: str) -> None:
        """Override the detected intent of this interaction."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"set_intent: the intent must be a non-empty string, got {name!r}")
        if len(name) > _MAX_INTENT:
            raise ValueError(f"set_intent: intents are at most {_MAX_INTENT} characters, "
                             f"got {len(name)}")
        if not self._late("set_intent"):
            self.marks.intent = name.strip()

    def track_conversion(self, outcome: str = "purchased", value: float = 0.0,
                         currency: str | None = None, external_id: str | None = None,
                         details: dict[str, Any] | None = None,
                         checkout_completed: bool | None = None) -> None:
        """Record an outcome of this member now; it is attributed to this interaction
        (or, for a payment's own updates, the interaction before). Telegram payments
        are recorded without this call."""
        facts = self.facts
        if not isinstance(facts, Facts):
            raise ValueError("track_conversion: this update has no person to credit")
        event = conversion_event(
            self.tenant_id, self.bot_id, facts.member_id, facts.chat_id, self._plugin.clock(),
            outcome, value, currency, external_id, details, checkout_completed,
            source="handler")
        if self.t_end is not None:  # after the handler returned: stored on its own
            self._plugin.writer.put(event)
        elif (marks := self.marks).conversions is None:
            marks.conversions = [event]
        else:
            marks.conversions.append(event)

    async def variant(self, experiment: str) -> Variant:
        """The variant of ``experiment`` for the person behind this update, recorded as
        an exposure (``v.name``, ``v.payload``, ``v.render(**values)``)::

            v = await analytics.variant("premium_pitch")
            await message.answer(v.render(price="$29"))
        """
        facts = self.facts
        member = facts.member_id if isinstance(facts, Facts) else None
        return await self._plugin.variant(experiment, member_id=member,
                                          tenant_id=self.tenant_id, bot_id=self.bot_id)

    async def segment(self) -> str | None:
        """The segment of the person behind this update from the latest optimizer run
        (``"high-value buyers"``, ``"at risk"``, ...), or None::

            if await analytics.segment() == "high-value buyers":
                await message.answer("As one of our best customers: Premium is 20% off.")
        """
        member = self.member_id
        if member is None:
            return None
        return await self._plugin.segment(member, tenant_id=self.tenant_id)

    def request_feedback(self) -> bool:
        """Ask the person behind this update for a CSAT rating (sampling and cooldown do
        not apply). The survey is sent from a task of its own, so it is not counted as
        this update's reply; False when there is no chat to ask in."""
        member, chat = self.member_id, self.chat_id
        if member is None or chat is None:
            return False
        return self._plugin.surveys.maybe_ask(self.bot, self.tenant_id, member, chat,
                                              "request", force=True)

    async def opt_out(self) -> None:
        """Stop recording the member behind this update (and keep a record of the choice)."""
        member = self.member_id
        if member is not None:
            await self._plugin.opt_out(member, tenant_id=self.tenant_id, bot_id=self.bot_id)

    async def opt_in(self) -> None:
        member = self.member_id
        if member is not None:
            await self._plugin.opt_in(member, tenant_id=self.tenant_id, bot_id=self.bot_id)

    # -- replies -----------------------------------------------------------------------------
    def _failed(self, doing: str) -> None:
        """Count and log a failure of the plugin's own while ``doing`` something for this
        update ("reading the replies to update"): the update's id is added."""
        self._plugin._capture_failed(doing + " %s", update_id_of(self))

    def note_request(self, method: Any, completed_at: float) -> None:
        """Keep what matching replies needs of a request the bot completed while the
        handler ran (the hot path: which requests answer the update is worked out later,
        by :meth:`replies`). The method object itself is not kept. Never raises: a
        request that cannot be read is counted as a capture failure."""
        try:
            request = read_request(method, completed_at)
        except Exception:
            self._failed("reading a request made for update")
            return
        if self.r_at is None:
            self.r_method, self.r_chat, self.r_text, self.r_at = request
            return
        marks = self.marks
        if marks.requests is None:
            marks.requests = [request]
        else:
            marks.requests.append(request)
            if len(marks.requests) >= _MAX_PENDING:
                self.replies()

    def replies(self) -> tuple[int, str | None, float | None]:
        """How many of the requests answer this update, the first answer's text and
        when it completed (``perf_counter``). Never raises: should the update or a
        request turn out unreadable, that is counted as a capture failure and the
        replies read so far are kept."""
        at, marks = self.r_at, self._marks
        if at is None:
            return _NO_REPLIES if marks is None else marks.replies
        marks = self.marks
        requests = [(self.r_method, self.r_chat, self.r_text, at)]
        if marks.requests:
            requests += marks.requests
        self.r_at = marks.requests = None
        count, text, first = marks.replies
        try:
            update = self.update
            kind, chat = reply_target(update) if update is not None else \
                facts_target(self._read_facts())
            if kind is not None:  # else nothing can answer this update
                for request in requests:
                    if is_reply(request, kind, chat):
                        count += 1
                        if first is None:
                            text, first = reply_text(request), request[3]
        except Exception:  # the interaction is stored with the replies read so far
            self._failed("reading the replies to update")
        marks.replies = (count, text, first)
        return count, text, first
