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

    #: The aiogram Update, read later in the writer thread; None when the hot path has
    #: read it already (``facts`` and ``update_id``).
    update: Any
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
    facts: Any = None  #: what the update says (extract.Facts or Skipped), when update is None
    update_id: int | None = None  #: the update's id, when update is None


class InteractionEvent(NamedTuple):
    """One inbound update from a person, with what the bot did about it.

    ``text`` is the raw text as received; it is redacted (or dropped) by the writer
    before anything is stored or spooled. A tuple, as :class:`Captured` is: the writer
    makes one per update, and a frozen dataclass, which sets each field through
    ``object.__setattr__``, took over three times as long to make.
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


OUTCOMES = frozenset({"purchased", "resolved", "visited", "did_nothing"})


@dataclass(frozen=True, slots=True)
class ConversionEvent:
    """A recorded outcome. ``derived`` marks one read from a captured update (a Telegram
    payment) rather than tracked by the bot."""

    tenant_id: str
    bot_id: int
    member_id: int
    chat_id: int | None
    ts: datetime
    outcome: str
    value: float
    amount_minor: int
    currency: str | None
    external_id: str | None
    source: str
    checkout_completed: bool
    details: str | None = None
    derived: bool = False


@dataclass(frozen=True, slots=True)
class ExposureEvent:
    """A member was shown a variant of an experiment (``Analytics.variant``)."""

    tenant_id: str
    bot_id: int
    experiment: str
    member_id: int
    variant: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """A CSAT rating from the survey's buttons."""

    tenant_id: str
    bot_id: int
    member_id: int
    chat_id: int | None
    ts: datetime
    rating: int
    trigger: str
    update_id: int | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """An update that is not an interaction, with the reason (logged and counted)."""

    reason: str


def conversion_event(tenant_id: str, bot_id: int, member_id: int, chat_id: int | None,
                     ts: datetime, outcome: str, value: float, currency: str | None,
                     external_id: str | None, details: dict[str, Any] | None,
                     checkout_completed: bool | None, source: str) -> ConversionEvent:
    """A validated conversion; ``ValueError`` says what is wrong with the arguments."""
    import json
    import math

    from .currency import check_currency, to_minor

    if outcome not in OUTCOMES:
        raise ValueError(f"track_conversion: outcome must be one of {sorted(OUTCOMES)}, "
                         f"got {outcome!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"track_conversion: value must be a finite number >= 0, "
                         f"got {value!r}")
    code = check_currency(currency) if currency is not None else None
    if value > 0 and code is None:
        raise ValueError("track_conversion: a value needs its currency (e.g. 'USD')")
    if external_id is not None and not 0 < len(str(external_id)) <= 128:
        raise ValueError("track_conversion: external_id must be 1 to 128 characters")
    text = json.dumps(details, default=str) if details is not None else None
    return ConversionEvent(
        tenant_id, bot_id, member_id, chat_id, ts, outcome, float(value),
        to_minor(float(value), code) if code else 0, code,
        None if external_id is None else str(external_id), source,
        outcome == "purchased" if checkout_completed is None else checkout_completed, text)
