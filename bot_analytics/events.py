"""Captured events.

The hot path builds one :class:`Captured` per update: an immutable record of
references and timings, a tuple so that it is cheap to build and invisible to the
garbage collector. The writer thread reads the update it refers to and turns it into an
:class:`InteractionEvent` or a :class:`MemberEvent`, or skips it with a reason.
Nothing here imports aiogram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

#: Event types that are interactions (see docs/metrics.md / KPIS.md).
INTERACTION_TYPES = frozenset({
    "message", "edited_message", "callback_query", "inline_query",
    "chosen_inline_result", "pre_checkout_query", "poll_answer", "successful_payment",
})


class Captured(NamedTuple):
    """What the hot path records about one handled update."""

    update: Any              #: the aiogram Update (read later, in the writer thread)
    bot_id: int
    tenant_id: str
    received: datetime | float  #: aware datetime, or epoch seconds from the default clock
    handled: bool
    error: str | None        #: exception class name when the handler raised
    handler_time_ms: float
    first_reply: str | None  #: the text (or caption) of the first reply
    response_time_ms: float | None
    reply_count: int
    escalated: bool
    intent_override: str | None


@dataclass(frozen=True, slots=True)
class InteractionEvent:
    """One inbound update from a person, with what the bot did about it.

    ``text`` is the raw text as received; it is redacted (or dropped) by the writer
    before anything is stored or spooled.
    """

    tenant_id: str
    bot_id: int
    update_id: int
    event_type: str
    ts: datetime
    member_id: int
    chat_id: int | None
    chat_type: str | None
    language_code: str | None
    text: str | None
    command: str | None
    command_args: str | None
    callback_data: str | None
    handled: bool
    error: str | None
    handler_time_ms: float
    response_text: str | None
    response_time_ms: float | None
    reply_count: int
    escalated: bool
    intent_override: str | None


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """A change in a member's lifecycle: start (with deep-link payload), block, unblock,
    opt-out, opt-in."""

    tenant_id: str
    bot_id: int
    member_id: int
    kind: str
    ts: datetime
    update_id: int | None = None
    chat_id: int | None = None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """An update that is not an interaction, with the reason (logged and counted)."""

    reason: str
