"""End-user ``/optout`` and ``/optin`` commands (``privacy.optout_commands: true``)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from .context import UpdateContext

OPTED_OUT = "You will no longer be included in this bot's analytics. Send /optin to undo."
OPTED_IN = "You are included in this bot's analytics again. Send /optout to stop."


def optout_router() -> Router:
    router = Router(name="bot_analytics_optout")

    @router.message(Command("optout"))
    async def _optout(message: Message, analytics: UpdateContext) -> None:
        await analytics.opt_out()
        await message.answer(OPTED_OUT)

    @router.message(Command("optin"))
    async def _optin(message: Message, analytics: UpdateContext) -> None:
        await analytics.opt_in()
        await message.answer(OPTED_IN)

    return router
