"""The CSAT survey: asking for a 1 to 5 rating with an inline keyboard and recording the
answer in ``feedback``.

Surveys are sent from tasks of their own, never inside a handler's time: after a
conversion or a hand-off (``feedback.after``), when a private chat has been idle for
the session timeout, or on demand (``request_feedback``). The rating buttons carry
callback data ``bafb:RATING:TRIGGER``; the capture middleware answers them itself, so
the bot's handlers never see them, and stores them in ``feedback`` only: a rating is not
an interaction of the bot's conversation and changes no session, bounce or fallback
figure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .events import FeedbackEvent

if TYPE_CHECKING:
    from .capture.context import UpdateContext
    from .plugin import Analytics

log = logging.getLogger("bot_analytics.feedback")

CALLBACK_PREFIX = "bafb:"
_CODES = {"session_end": "s", "conversion": "c", "escalation": "e", "request": "r"}
_TRIGGERS = {code: name for name, code in _CODES.items()}


def parse_answer(data: str | None) -> tuple[int, str] | None:
    """(rating, trigger) of a rating button's callback data, or None."""
    if not data or not data.startswith(CALLBACK_PREFIX):
        return None
    parts = data.split(":")
    if len(parts) != 3 or parts[1] not in {"1", "2", "3", "4", "5"} \
            or parts[2] not in _TRIGGERS:
        return None
    return int(parts[1]), _TRIGGERS[parts[2]]


class Surveys:
    """Who to ask, when, and the answers. One per :class:`Analytics`."""

    def __init__(self, plugin: Analytics):
        self.plugin = plugin
        self.settings = plugin.settings.feedback
        self.timeout = timedelta(minutes=plugin.settings.metrics.session_timeout_minutes)
        self.rng = random.Random()
        #: (tenant, Telegram user id) -> when they were last asked.
        self.last_asked: dict[tuple[str, int], datetime] = {}
        #: (bot id, private chat id) -> (last activity, bot, tenant).
        self.idle: dict[tuple[int, int], tuple[datetime, Any, str]] = {}
        self.counters = {"asked": 0, "answered": 0, "send_failures": 0, "skipped": 0,
                         "blocked": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        after = set(self.settings.after) if self.settings.enabled else set()
        self.on_session_end = "session_end" in after
        self.on_conversion = "conversion" in after
        self.on_escalation = "escalation" in after
        #: Anything to do after each update.
        self.active = bool(after)

    # -- from the capture middleware (cheap: attribute reads and a dict write) ---------------
    @staticmethod
    def is_answer(update: Any) -> bool:
        query = getattr(update, "callback_query", None)
        return query is not None and bool(query.data) and \
            query.data.startswith(CALLBACK_PREFIX)

    def after_update(self, ctx: UpdateContext) -> None:
        """Note activity and the moments worth a survey, once a handler is done."""
        member_update = ctx.update.my_chat_member
        if member_update is not None and member_update.new_chat_member.status == "kicked":
            # Blocked: no survey for a chat the bot can no longer write to.
            self.idle.pop((ctx.bot_id, member_update.chat.id), None)
            return
        message = ctx.update.message
        if self.on_session_end and message is not None and message.chat.type == "private":
            self.idle[(ctx.bot_id, message.chat.id)] = (self.plugin.clock(), ctx.bot,
                                                       ctx.tenant_id)
        trigger = None
        if self.on_escalation and ctx.escalated:
            trigger = "escalation"
        elif self.on_conversion and (ctx.conversions or (
                message is not None and message.successful_payment is not None)):
            trigger = "conversion"
        if trigger is not None:
            member, chat = ctx.member_id, ctx.chat_id
            if member is not None and chat is not None:
                self.maybe_ask(ctx.bot, ctx.tenant_id, member, chat, trigger)

    # -- asking ---------------------------------------------------------------------------------
    def maybe_ask(self, bot: Any, tenant: str, member: int, chat: int, trigger: str,
                  force: bool = False) -> bool:
        """Schedule a survey unless sampling or the cooldown says no; True if scheduled.
        People who opted out of analytics are never asked."""
        now = self.plugin.clock()
        key = (tenant, member)
        if (tenant, self.plugin.stored_member_id(member)) in self.plugin.enricher.opted_out:
            return False
        if not force:
            last = self.last_asked.get(key)
            cooldown = timedelta(hours=self.settings.cooldown_hours)
            if (last is not None and now - last < cooldown) or \
                    self.rng.random() >= self.settings.sample_rate:
                self.counters["skipped"] += 1
                return False
        self.last_asked[key] = now
        self.idle.pop((getattr(bot, "id", 0), chat), None)
        task = asyncio.get_running_loop().create_task(self.ask(bot, chat, trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def keyboard(self, trigger: str) -> Any:
        from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

        code = _CODES[trigger]
        return InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text=label, callback_data=f"{CALLBACK_PREFIX}{i}:{code}")
            for i, label in enumerate(self.settings.buttons, start=1)]])

    async def ask(self, bot: Any, chat: int, trigger: str) -> bool:
        """Send the survey now (from a task of its own: not a reply to any update)."""
        from .capture.context import current_update

        current_update.set(None)  # this task's copy of the context only
        try:
            await bot.send_message(chat, self.settings.question,
                                   reply_markup=self.keyboard(trigger))
        except Exception as error:
            if "blocked" in str(error):  # the person blocked the bot since: nothing wrong
                self.counters["blocked"] += 1
                log.debug("no CSAT survey for chat %s: %s", chat, error)
            else:
                self.counters["send_failures"] += 1
                log.warning("bot-analytics: could not send the CSAT survey to chat %s: %s",
                            chat, error)
            return False
        self.counters["asked"] += 1
        return True

    async def survey_idle_sessions(self) -> int:
        """Ask in every private chat idle for the session timeout; returns how many
        surveys were scheduled. Runs every ``feedback.check_interval_seconds``."""
        now = self.plugin.clock()
        due = [(key, value) for key, value in self.idle.items()
               if now - value[0] >= self.timeout]
        asked = 0
        for (bot_id, chat), (_, bot, tenant) in due:
            self.idle.pop((bot_id, chat), None)
            asked += self.maybe_ask(bot, tenant, chat, chat, "session_end")
        return asked

    async def flush(self) -> None:
        """Wait for surveys being sent."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def start(self) -> None:
        if self.on_session_end and self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), name="bot-analytics-surveys")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
            self._loop_task = None
        await self.flush()

    async def _run(self) -> None:
        interval = self.settings.check_interval_seconds
        last_log = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.survey_idle_sessions()
            except Exception:
                if time.monotonic() - last_log > 600:
                    last_log = time.monotonic()
                    log.exception("bot-analytics: looking for idle sessions failed")

    # -- answers ----------------------------------------------------------------------------------
    async def handle_answer(self, ctx: UpdateContext) -> None:
        """Store a rating and thank the person (in place of the bot's handlers)."""
        query = ctx.update.callback_query
        answer = parse_answer(query.data)
        if answer is None:
            await query.answer()
            return
        rating, trigger = answer
        member = query.from_user.id
        message = query.message
        chat = message.chat.id if message is not None else None
        self.plugin.writer.put(FeedbackEvent(
            ctx.tenant_id, ctx.bot_id, member, chat, self.plugin.clock(), rating, trigger,
            int(ctx.update.update_id)))
        self.counters["answered"] += 1
        await query.answer(self.settings.thanks)
        if message is not None and chat is not None:
            try:
                await ctx.bot.edit_message_reply_markup(chat_id=chat,
                                                        message_id=message.message_id)
            except Exception as error:  # an old message, already edited...: harmless
                log.debug("could not remove the survey's buttons: %s", error)
