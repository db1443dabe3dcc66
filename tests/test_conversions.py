"""Conversions: Telegram payments recorded without code, tracking in and out of
handlers, attribution to the trigger, idempotency; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Dispatcher, F
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from bot_analytics import Analytics, UpdateContext
from bot_analytics.currency import from_minor, to_minor
from bot_analytics.emulator import TelegramEmulator

from .conftest import RunningBot, make_settings, new_bot, rows
from .test_writer import event

T0 = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def test_minor_units() -> None:
    assert from_minor(2900, "USD") == 29.0
    assert from_minor(2900, "JPY") == 2900.0
    assert from_minor(50, "XTR") == 50.0
    assert from_minor(1234, "KWD") == 1.234
    assert to_minor(9.99, "EUR") == 999 and to_minor(0.1 + 0.2, "USD") == 30


def shop() -> Dispatcher:
    dp = Dispatcher()

    @dp.callback_query(F.data.startswith("buy:"))
    async def buy(query: CallbackQuery) -> None:
        currency, amount = (query.data or "").split(":")[1:]
        await query.answer()
        assert query.message is not None
        await query.message.answer_invoice(
            title="Plan", description="A plan", payload=f"plan-{currency}",
            currency=currency, prices=[LabeledPrice(label="Plan", amount=int(amount))],
            provider_token="x")

    @dp.pre_checkout_query()
    async def checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    @dp.message(F.successful_payment)
    async def paid(message: Message) -> None:
        await message.answer("thanks")

    @dp.message(F.text == "solved, thanks")
    async def solved(message: Message, analytics: UpdateContext) -> None:
        analytics.track_conversion("resolved")
        await message.answer("glad to help")

    @dp.message()
    async def menu(message: Message) -> None:
        await message.answer("menu")

    return dp


async def test_telegram_payments_become_purchases(database_url: str, tmp_path: Path,
                                                  emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = shop()
    analytics.setup(dp)
    gil = emulator.user("Gil")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        gil.send("show me")
        await emulator.wait_for(lambda: gil.received())
        menu = gil.received()[-1]
        expected = 1
        for currency, amount in (("USD", 2900), ("JPY", 2900), ("XTR", 50)):
            gil.press(menu, f"buy:{currency}:{amount}")
            await emulator.wait_for(lambda c=currency: any(
                m.get("invoice", {}).get("currency") == c for m in gil.received()))
            assert await gil.pay(currency, amount, f"plan-{currency}")
            expected += 3
            await running.settle(expected)
        # Telegram delivers the same payment twice (same charge id): stored once.
        gil.paid("USD", 2900, "plan-USD", charge_id="dup-1")
        gil.paid("USD", 2900, "plan-USD", charge_id="dup-1")
        gil.send("solved, thanks")
        await running.settle(expected + 3)

    conv = rows(database_url, "SELECT * FROM conversions ORDER BY id")
    purchases = [c for c in conv if c.source == "telegram_payment"]
    assert [(c.currency, c.amount_minor, c.value) for c in purchases] == [
        ("USD", 2900, 29.0), ("JPY", 2900, 2900.0), ("XTR", 50, 50.0), ("USD", 2900, 29.0)]
    assert all(c.outcome == "purchased" and c.checkout_completed for c in purchases)
    assert purchases[-1].external_id == "tg:dup-1"
    # The trigger is the button press, not the payment's own updates.
    presses = {r.id: r for r in rows(database_url, "SELECT * FROM interactions WHERE "
                                                   "event_type = 'callback_query'")}
    for c in purchases[:3]:
        trigger = presses[c.interaction_id]
        assert trigger.intent == "purchase" and trigger.monetization_event in (True, 1)
        assert c.intent == "purchase" and c.pages_visited >= 2
    money = rows(database_url, "SELECT * FROM monetization_events ORDER BY conversion_id")
    assert [(m.conversion_id, m.amount_minor, m.currency) for m in money] == [
        (c.id, c.amount_minor, c.currency) for c in purchases]
    resolved = [c for c in conv if c.outcome == "resolved"]
    assert len(resolved) == 1 and resolved[0].source == "handler"
    assert resolved[0].trigger_text == "solved, thanks"
    assert resolved[0].bot_message == "glad to help" and resolved[0].value == 0
    assert len(money) == 4  # no monetization event without value
    assert analytics.health()["rejected"] == 0


async def test_attribution_window_and_idempotent_api(database_url: str,
                                                     tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path))
    a._bots[0] = (42, "default")  # the bot this process serves
    window = timedelta(hours=24)
    a.writer.put(event(1, member=5, text="old question", ts=T0 - window - timedelta(seconds=1)))
    a.writer.put(event(2, member=6, text="edge", ts=T0 - window))
    a.writer.put(event(3, member=7, text="first", ts=T0 - timedelta(hours=2)))
    a.writer.put(event(4, member=7, text="latest", ts=T0 - timedelta(hours=1)))
    a.writer.put(event(5, member=7, text="after", ts=T0 + timedelta(seconds=1)))
    assert await a.flush(10)
    a.track_conversion(member_id=5, value=10, currency="eur", ts=T0, external_id="o-5")
    a.track_conversion(member_id=6, value=10, currency="EUR", ts=T0, external_id="o-6")
    a.track_conversion(member_id=7, value=10, currency="EUR", ts=T0, external_id="o-7",
                       details={"sku": "A1"})
    a.track_conversion(member_id=7, value=10, currency="EUR", ts=T0, external_id="o-7")
    a.track_conversion(member_id=8, outcome="visited", ts=T0)  # never seen: no trigger
    await a.close()
    got = {c.member_id: c for c in rows(database_url, "SELECT * FROM conversions")}
    ids = {r.update_id: r.id for r in rows(database_url, "SELECT id, update_id FROM "
                                                         "interactions")}
    assert got[5].interaction_id is None                 # just outside the window
    assert got[6].interaction_id == ids[2]               # exactly 24 h before: inside
    assert got[7].interaction_id == ids[4]               # the latest at or before
    assert got[7].trigger_text == "latest" and got[7].currency == "EUR"
    assert got[7].details == '{"sku": "A1"}' and got[7].amount_minor == 1000
    # Updates 3 and 4 are an hour apart: 4 starts its own session, 1 h before.
    assert got[7].time_to_conversion_s == 3600 and got[7].pages_visited == 1
    assert got[8].interaction_id is None and got[8].outcome == "visited"
    assert len(rows(database_url, "SELECT id FROM conversions")) == 4  # o-7 once
    flagged = {r.update_id for r in rows(database_url, "SELECT update_id FROM interactions "
                                                       "WHERE monetization_event")}
    assert flagged == {2, 4}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"outcome": "bought"}, "outcome must be one of"),
    ({"value": -1, "currency": "USD"}, "finite number >= 0"),
    ({"value": float("nan"), "currency": "USD"}, "finite number >= 0"),
    ({"value": 5}, "needs its currency"),
    ({"value": 5, "currency": "dollars"}, "three-letter code"),
    ({"external_id": ""}, "1 to 128 characters"),
])
def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path, kwargs: dict[str, object],
                                                 message: str) -> None:
    a = Analytics(make_settings(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path))
    with pytest.raises(ValueError, match=message):
        a.track_conversion(member_id=1, bot_id=42, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass bot_id"):
        a.track_conversion(member_id=1)
    assert a.health()["queued"] == 0
