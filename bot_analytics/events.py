"""Captured events: small frozen records built on the hot path.

Nothing here imports aiogram; the capture layer translates updates into these and the
pipeline turns them into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Event types that are interactions (see docs/metrics.md / KPIS.md).
INTERACTION_TYPES = frozenset({
    "message", "edited_message", "callback_query", "inline_query",
    "chosen_inline_result", "pre_checkout_query", "poll_answer", "successful_payment",
})


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
