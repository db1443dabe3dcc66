"""The per-update context handlers receive as ``analytics``."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..events import Skipped
from .extract import Facts

if TYPE_CHECKING:
    from ..plugin import Analytics

_MAX_INTENT = 64

#: The update being handled in this task; the request middleware ties replies to it.
current_update: ContextVar[UpdateContext | None] = ContextVar("bot_analytics_update",
                                                              default=None)

#: End-user privacy commands answered by the plugin (privacy.optout_commands).
OPT_COMMANDS = frozenset({"/optout", "/optin"})
OPTED_OUT = "You will no longer be included in this bot's analytics. Send /optin to undo."
OPTED_IN = "You are included in this bot's analytics again. Send /optout to stop."

#: Bot API methods that send content to a chat.
CONTENT_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice",
    "sendAnimation", "sendSticker", "sendVideoNote", "sendLocation", "sendVenue",
    "sendContact", "sendPoll", "sendDice", "sendMediaGroup", "sendInvoice", "sendPaidMedia",
    "sendChecklist", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
    "editMessageText", "editMessageCaption", "editMessageMedia", "editMessageReplyMarkup",
    "editMessageLiveLocation", "sendGame",
})


class UpdateContext:
    """What the plugin knows about the update being handled, and what the handler can
    tell it. Injected into handler data under the key ``analytics``.

    In a handler::

        async def on_message(message: Message, analytics: UpdateContext) -> None:
            if wants_human(message.text):
                analytics.mark_escalated()
    """

    __slots__ = ("_plugin", "bot", "bot_id", "escalated", "facts", "first_reply_at",
                 "intent", "received", "reply_count", "response_text", "t0", "tenant_id",
                 "update_id")

    def __init__(self, plugin: Analytics, facts: Facts | Skipped, update_id: int,
                 bot: Any, bot_id: int, tenant_id: str, t0: float, received: datetime):
        self._plugin = plugin
        self.facts = facts
        self.update_id = update_id
        self.bot = bot
        self.bot_id = bot_id
        self.tenant_id = tenant_id
        self.t0 = t0
        self.received = received
        self.first_reply_at: float | None = None
        self.reply_count = 0
        self.response_text: str | None = None
        self.escalated = False
        self.intent: str | None = None

    # -- what handlers call ----------------------------------------------------------------
    @property
    def plugin(self) -> Analytics:
        """The :class:`~bot_analytics.Analytics` instance."""
        return self._plugin

    @property
    def member_id(self) -> int | None:
        """The Telegram user id of the person behind this update, if any."""
        return self.facts.member_id if isinstance(self.facts, Facts) else None

    @property
    def chat_id(self) -> int | None:
        return self.facts.chat_id if isinstance(self.facts, Facts) else None

    @property
    def command(self) -> str | None:
        """The command of this update (``/start``), if it is one."""
        return self.facts.command if isinstance(self.facts, Facts) else None

    @property
    def recorded(self) -> bool:
        """False when this update is not an interaction (a channel post, a bot...)."""
        return isinstance(self.facts, Facts)

    def mark_escalated(self) -> None:
        """Mark this interaction as handed off to a human."""
        self.escalated = True

    def set_intent(self, name: str) -> None:
        """Override the detected intent of this interaction."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"set_intent: the intent must be a non-empty string, got {name!r}")
        if len(name) > _MAX_INTENT:
            raise ValueError(f"set_intent: intents are at most {_MAX_INTENT} characters, "
                             f"got {len(name)}")
        self.intent = name.strip()

    async def opt_out(self) -> None:
        """Stop recording the member behind this update (and keep a record of the choice)."""
        if self.member_id is not None:
            await self._plugin.opt_out(self.member_id, tenant_id=self.tenant_id,
                                       bot_id=self.bot_id)

    async def opt_in(self) -> None:
        if self.member_id is not None:
            await self._plugin.opt_in(self.member_id, tenant_id=self.tenant_id,
                                      bot_id=self.bot_id)

    # -- replies -----------------------------------------------------------------------------
    def is_reply(self, method: Any) -> bool:
        facts = self.facts
        if not isinstance(facts, Facts):
            return False
        name = method.__api_method__
        if name in CONTENT_METHODS:
            chat_id = getattr(method, "chat_id", None)
            if chat_id is None:
                # Edits of inline messages address no chat.
                return getattr(method, "inline_message_id", None) is not None
            return chat_id == facts.chat_id
        if name == "answerCallbackQuery":
            return facts.event_type == "callback_query" and bool(getattr(method, "text", None))
        if name == "answerInlineQuery":
            return facts.event_type == "inline_query"
        return False

    def note_reply(self, method: Any, completed_at: float) -> None:
        if not self.is_reply(method):
            return
        self.reply_count += 1
        if self.first_reply_at is None:
            self.first_reply_at = completed_at
            text = getattr(method, "text", None) or getattr(method, "caption", None)
            if text is None and method.__api_method__ == "sendInvoice":
                text = method.description
            self.response_text = text if isinstance(text, str) else None
