"""An example shop-and-support bot with bot-analytics set up.

Run it against real Telegram::

    BOT_TOKEN=123:ABC python examples/shop_bot.py

or let ``bot-analytics demo`` run it against the offline Telegram with simulated users.
The only analytics lines are the ``Analytics`` setup, ``allowed_updates``, the
``analytics`` argument of the handlers that mark hand-offs, and the ``premium_pitch``
experiment: half of the people see Premium at $29 a month, half "save 20%: $23.20".
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from bot_analytics import Analytics, UpdateContext

#: An A/B experiment on how Premium is offered (config.yaml may define it instead).
PREMIUM_PITCH = {
    "variants": [
        {"name": "full_price", "weight": 1,
         "payload": {"text": "Premium: priority support and more, ${price}/month.",
                     "premium_cents": 2900}},
        {"name": "save20", "weight": 1,
         "payload": {"text": "Save 20% - Premium is only ${price}/month this month!",
                     "premium_cents": 2320}},
    ],
    "metric": "conversion",
    "secondary_metrics": ["revenue_per_member"],
    "min_detectable_effect": 0.5,
}

PRODUCTS = {
    "basic": ("Basic plan", "One month of the basic plan", 900),
    "premium": ("Premium plan", "One month of premium: priority support and more", 2900),
}
CURRENCY = "USD"

FAQ = {
    "delivery": "Orders ship within 2 business days; delivery takes 3 to 5 days.",
    "price": "Basic is $9 a month, Premium $29 a month. Send /shop to buy.",
    "refund": "You can ask for a refund within 14 days of purchase.",
}


def build_router() -> Router:
    router = Router(name="shop")

    @router.message(CommandStart())
    async def start(message: Message, command: CommandObject) -> None:
        greeting = "Welcome to the Demo Shop!"
        if command.args:
            greeting += " Thanks for coming from our partner link."
        await message.answer(f"{greeting}\nSend /shop to see our plans or ask me anything.")

    @router.message(Command("help"))
    async def help_(message: Message) -> None:
        await message.answer("/shop - our plans\nAsk about delivery, prices or refunds, "
                             "or say 'human' to talk to a person.")

    @router.message(Command("shop"))
    async def shop(message: Message, analytics: UpdateContext) -> None:
        pitch = await analytics.variant("premium_pitch")
        premium = pitch.payload["premium_cents"]
        keyboard = InlineKeyboardMarkup(inline_keyboard=[
            [InlineKeyboardButton(
                text=f"{title} - ${(premium if key == 'premium' else cents) / 100:.2f}",
                callback_data=f"buy:{key}")]
            for key, (title, _, cents) in PRODUCTS.items()])
        await message.answer(pitch.render(price=f"{premium / 100:.2f}") + "\nChoose a plan:",
                             reply_markup=keyboard)

    @router.callback_query(F.data.startswith("buy:"))
    async def buy(query: CallbackQuery, analytics: UpdateContext) -> None:
        key = (query.data or "").split(":", 1)[1]
        if key not in PRODUCTS or query.message is None:
            await query.answer("That plan is no longer available", show_alert=True)
            return
        title, description, cents = PRODUCTS[key]
        if key == "premium":  # the price this person was offered
            cents = (await analytics.variant("premium_pitch")).payload["premium_cents"]
        await query.answer()
        await query.message.answer_invoice(
            title=title, description=description, payload=f"plan:{key}", currency=CURRENCY,
            prices=[LabeledPrice(label=title, amount=cents)], provider_token="demo")

    @router.pre_checkout_query()
    async def checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    @router.message(F.successful_payment)
    async def paid(message: Message) -> None:
        await message.answer("Payment received, thank you! Your plan is active.")

    @router.message(F.text.regexp(r"(?i)\b(human|agent|operator|person)\b"))
    async def hand_off(message: Message, analytics: UpdateContext) -> None:
        analytics.mark_escalated()
        await message.answer("I'm connecting you with a member of our team.")

    @router.message(F.text.regexp(r"(?i)\b(hi|hello|hey)\b"))
    async def hello(message: Message) -> None:
        await message.answer("Hello! How can I help?")

    @router.message(F.text.regexp(r"(?i)\b(late|broken|terrible|awful|wrong|angry)\b"))
    async def complaint(message: Message) -> None:
        await message.answer("I'm sorry to hear that. Could you tell me your order number?")

    @router.message(F.text.regexp(r"(?i)\b(deliver|delivery|shipping|ship)\b"))
    async def delivery(message: Message) -> None:
        await message.answer(FAQ["delivery"])

    @router.message(F.text.regexp(r"(?i)\b(price|cost|how much|plans?)\b"))
    async def price(message: Message) -> None:
        await message.answer(FAQ["price"])

    @router.message(F.text.regexp(r"(?i)\brefund"))
    async def refund(message: Message) -> None:
        await message.answer(FAQ["refund"])

    @router.message(F.text.regexp(r"(?i)\b(thanks|thank you|great|love)\b"))
    async def thanks(message: Message, analytics: UpdateContext) -> None:
        analytics.track_conversion("resolved")  # the person's question was answered
        await message.answer("Happy to help!")

    @router.message(F.text)
    async def fallback(message: Message) -> None:
        await message.answer("Sorry, I didn't get that. Send /help to see what I can do.")

    # Photos, stickers and the like have no handler: they count as not handled.
    return router


def build_dispatcher(analytics: Analytics) -> Dispatcher:
    analytics.define_experiment("premium_pitch", PREMIUM_PITCH)
    dp = Dispatcher()
    dp.include_router(build_router())
    analytics.setup(dp)
    return dp


async def main() -> None:  # pragma: no cover - needs a real token
    analytics = Analytics.from_config(os.environ.get("BOT_ANALYTICS_CONFIG"))
    dp = build_dispatcher(analytics)
    bot = Bot(os.environ["BOT_TOKEN"])
    await dp.start_polling(bot, allowed_updates=analytics.allowed_updates(dp))


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(main())
