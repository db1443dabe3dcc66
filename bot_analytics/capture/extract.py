"""Read what analytics needs from an aiogram ``Update``: pure, never raising for
well-formed updates, and only reading attributes. It runs on the hot path once the
handler is done (:meth:`~.context.UpdateContext.detach`), so that the update's objects
are freed with the bot's rather than held until the writer's batch, and when a handler
asks (``analytics.member_id``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..currency import from_minor
from ..events import Captured, ConversionEvent, InteractionEvent, MemberEvent, Skipped


class Facts:
    """What one update says about the person and their message."""

    __slots__ = ("callback_data", "chat_id", "chat_type", "command", "command_args",
                 "event_type", "language_code", "lifecycle", "member_id", "payment", "text")

    def __init__(self, event_type: str, member_id: int, chat_id: int | None,
                 chat_type: str | None, language_code: str | None, text: str | None = None,
                 command: str | None = None, command_args: str | None = None,
                 callback_data: str | None = None, lifecycle: str | None = None,
                 payment: Any = None):
        self.event_type = event_type
        self.member_id = member_id
        self.chat_id = chat_id
        self.chat_type = chat_type
        self.language_code = language_code
        self.text = text
        self.command = command
        self.command_args = command_args
        self.callback_data = callback_data
        self.lifecycle = lifecycle  # "blocked" / "unblocked" for my_chat_member
        self.payment = payment  # the SuccessfulPayment of a payment message


def parse_command(text: str) -> tuple[str | None, str | None]:
    """``/Start@shop_bot promo`` -> (``/start``, ``promo``)."""
    if not text.startswith("/") or len(text) < 2:
        return None, None
    head, _, rest = text.partition(" ")
    name = head.split("@", 1)[0].lower()
    if len(name) < 2 or not name[1:].replace("_", "").isalnum():
        return None, None
    return name, (rest.strip() or None)


def _person(user: Any) -> Skipped | None:
    if user is None:
        return Skipped("no_sender")
    if user.is_bot:
        return Skipped("from_bot")
    return None


def _message_facts(msg: Any, event_type: str) -> Facts | Skipped:
    if msg.sender_chat is not None:
        # Anonymous group admins, channels posting in groups, linked-channel posts.
        return Skipped("sender_chat")
    user = msg.from_user
    skip = _person(user)
    if skip is not None:
        return skip
    chat = msg.chat
    return _text_facts(event_type, user.id, chat.id, chat.type, user.language_code, msg.text,
                       msg.caption, msg.successful_payment)


def _text_facts(event_type: str, member_id: int, chat_id: int, chat_type: str,
                language_code: str | None, text: str | None, caption: str | None,
                payment: Any) -> Facts:
    command = args = None
    if payment is not None:
        event_type = "successful_payment"
    elif text:
        command, args = parse_command(text)
    return Facts(event_type, member_id, chat_id, chat_type, language_code,
                 text if text is not None else caption, command, args, payment=payment)


#: What the capture middleware reads of the usual update, a message from a person that is
#: not a payment, once its handler is done: (member id, chat id, chat type, language code,
#: text, caption). A tuple takes the hot path a fraction of the steps :func:`read_update`
#: and a :class:`Facts` do; :func:`message_facts` makes the Facts in the writer.
MessageRead = tuple[int, int, str, str | None, str | None, str | None]


def message_facts(read: MessageRead) -> Facts:
    """The Facts of a message update from what the capture middleware read of it: the
    same as :func:`read_update` gives for the update."""
    return _text_facts("message", *read, None)


def read_update(update: Any) -> Facts | Skipped:
    """Facts of an interaction or a lifecycle change, or why the update is neither."""
    if update.message is not None:
        return _message_facts(update.message, "message")
    if update.edited_message is not None:
        return _message_facts(update.edited_message, "edited_message")
    if (cq := update.callback_query) is not None:
        if (skip := _person(cq.from_user)) is not None:
            return skip
        chat = cq.message.chat if cq.message is not None else None
        return Facts("callback_query", cq.from_user.id, chat.id if chat else None,
                     chat.type if chat else None, cq.from_user.language_code,
                     callback_data=cq.data)
    if (iq := update.inline_query) is not None:
        if (skip := _person(iq.from_user)) is not None:
            return skip
        return Facts("inline_query", iq.from_user.id, None, iq.chat_type,
                     iq.from_user.language_code, text=iq.query)
    if (cr := update.chosen_inline_result) is not None:
        if (skip := _person(cr.from_user)) is not None:
            return skip
        return Facts("chosen_inline_result", cr.from_user.id, None, None,
                     cr.from_user.language_code, text=cr.query)
    if (pq := update.pre_checkout_query) is not None:
        if (skip := _person(pq.from_user)) is not None:
            return skip
        return Facts("pre_checkout_query", pq.from_user.id, None, None,
                     pq.from_user.language_code)
    if (pa := update.poll_answer) is not None:
        if (skip := _person(pa.user)) is not None:
            return Skipped("anonymous_poll_answer") if pa.voter_chat is not None else skip
        return Facts("poll_answer", pa.user.id, None, None, pa.user.language_code)
    if (cm := update.my_chat_member) is not None:
        if cm.chat.type != "private":
            return Skipped("group_membership")
        if (skip := _person(cm.from_user)) is not None:
            return skip
        old, new = cm.old_chat_member.status, cm.new_chat_member.status
        if new == "kicked" and old != "kicked":
            kind = "blocked"
        elif old == "kicked" and new != "kicked":
            kind = "unblocked"
        else:
            return Skipped("membership_unchanged")
        return Facts("my_chat_member", cm.from_user.id, cm.chat.id, cm.chat.type,
                     cm.from_user.language_code, lifecycle=kind)
    if update.channel_post is not None or update.edited_channel_post is not None:
        return Skipped("channel_post")
    return Skipped(f"type:{update.event_type}")


#: Bot API methods that send content to a chat.
CONTENT_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice",
    "sendAnimation", "sendSticker", "sendVideoNote", "sendLocation", "sendVenue",
    "sendContact", "sendPoll", "sendDice", "sendMediaGroup", "sendInvoice", "sendPaidMedia",
    "sendChecklist", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup",
    "editMessageLiveLocation", "sendGame",
})


def reply_target(update: Any) -> tuple[str | None, int | None]:
    """(update type, chat id) for matching replies: the least reading that does it."""
    msg = update.message
    if msg is not None:
        return "message", msg.chat.id
    cq = update.callback_query
    if cq is not None:
        m = cq.message
        return "callback_query", (m.chat.id if m is not None else None)
    if update.inline_query is not None:
        return "inline_query", None
    msg = update.edited_message
    if msg is not None:
        return "edited_message", msg.chat.id
    return None, None


def facts_target(facts: Facts | Skipped | None) -> tuple[str | None, int | None]:
    """:func:`reply_target` from what an update says, once the update itself is gone. It
    differs only for updates that are not recorded (``Skipped``), which it gives none."""
    if not isinstance(facts, Facts):
        return None, None
    kind = facts.event_type
    if kind == "message" or kind == "successful_payment":
        return "message", facts.chat_id
    if kind == "callback_query" or kind == "edited_message" or kind == "inline_query":
        return kind, facts.chat_id
    return None, None


def update_id_of(item: Any) -> Any:
    """The id of the update behind a context or a record, for messages; "?" when it
    cannot be read."""
    update = getattr(item, "update", None)
    if update is None:
        found = getattr(item, "update_id", None)
        return "?" if found is None else found
    return getattr(update, "update_id", "?")


#: What is kept of a Bot API request: (method name, chat, text, when it completed). The
#: chat is the ``chat_id`` it was sent to, or :data:`INLINE_MESSAGE` for an edit of an
#: inline message (which addresses no chat).
Request = tuple[str, Any, Any, float]
INLINE_MESSAGE = "inline message"


def read_request(method: Any, completed_at: float) -> Request:
    """What matching replies needs of a request, read from the method's fields so that
    the method object itself need not be kept. Raises for an object that is not a Bot
    API method."""
    fields = method.__dict__
    chat = fields.get("chat_id")
    if chat is None and fields.get("inline_message_id") is not None:
        chat = INLINE_MESSAGE
    # The text of a message, the caption of a file, an invoice's description, the
    # notification of a callback answer.
    text = fields.get("text") or fields.get("caption") or fields.get("description")
    return method.__api_method__, chat, text, completed_at


def reply_text(request: Request) -> str | None:
    """The text (or caption, or an invoice's description) a reply sent."""
    text = request[2]
    return text if isinstance(text, str) else None


def is_reply(request: Request, kind: str, chat: int | None) -> bool:
    """Whether a Bot API request answers an update of type ``kind`` from ``chat``."""
    name, target, text, _ = request
    if name in CONTENT_METHODS:
        return target == INLINE_MESSAGE or bool(target == chat)
    if name == "answerCallbackQuery":
        return kind == "callback_query" and bool(text)
    if name == "answerInlineQuery":
        return kind == "inline_query"
    return False


def to_events(c: Captured) -> list[InteractionEvent | MemberEvent | ConversionEvent] | Skipped:
    """Turn a hot-path record into the events the pipeline stores (or a skip reason).
    A Telegram payment gives its interaction and a ``purchased`` conversion."""
    update_id: int
    if c.update is None:  # read on the hot path
        facts, update_id = c.facts, c.update_id  # type: ignore[assignment]
    else:
        facts, update_id = read_update(c.update), c.update.update_id
    if isinstance(facts, Skipped):
        return facts
    received = c.received
    ts = received if isinstance(received, datetime) else datetime.fromtimestamp(received, UTC)
    if facts.lifecycle is not None:
        return [MemberEvent(c.tenant_id, c.bot_id, facts.member_id, facts.lifecycle, ts,
                            update_id, facts.chat_id)]
    out: list[InteractionEvent | MemberEvent | ConversionEvent] = [InteractionEvent(
        c.tenant_id, c.bot_id, update_id, facts.event_type, ts, facts.member_id,
        facts.chat_id, facts.chat_type, facts.language_code, facts.text, facts.command,
        facts.command_args, facts.callback_data, c.handled, c.error, c.handler_time_ms,
        c.first_reply, c.response_time_ms, c.reply_count, c.escalated,
        c.intent_override)]
    pay = facts.payment
    if pay is not None:
        currency = str(pay.currency).upper()
        amount = int(pay.total_amount)
        out.append(ConversionEvent(
            c.tenant_id, c.bot_id, facts.member_id, facts.chat_id, ts, "purchased",
            from_minor(amount, currency), amount, currency,
            f"tg:{pay.telegram_payment_charge_id}", "telegram_payment", True,
            json.dumps({"invoice_payload": pay.invoice_payload}), derived=True))
    return out
