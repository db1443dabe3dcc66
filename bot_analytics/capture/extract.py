"""Read what analytics needs from an aiogram ``Update``: pure, cheap, never raising for
well-formed updates. Runs on the hot path, so it only reads attributes."""

from __future__ import annotations

from typing import Any

from ..events import Skipped


class Facts:
    """What one update says about the person and their message."""

    __slots__ = ("callback_data", "chat_id", "chat_type", "command", "command_args",
                 "event_type", "language_code", "lifecycle", "member_id", "text")

    def __init__(self, event_type: str, member_id: int, chat_id: int | None,
                 chat_type: str | None, language_code: str | None, text: str | None = None,
                 command: str | None = None, command_args: str | None = None,
                 callback_data: str | None = None, lifecycle: str | None = None):
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
    text = msg.text if msg.text is not None else msg.caption
    command = args = None
    if msg.successful_payment is not None:
        event_type = "successful_payment"
    elif text and msg.text is not None:
        command, args = parse_command(text)
    return Facts(event_type, user.id, chat.id, chat.type, user.language_code, text,
                 command, args)


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
