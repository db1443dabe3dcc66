"""A real aiogram bot polling the offline Telegram over HTTP, with analytics set up,
on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram import Dispatcher, F
from aiogram.filters import Command, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import CallbackQuery, ErrorEvent, Message, PreCheckoutQuery

from bot_analytics import Analytics, UpdateContext
from bot_analytics.emulator import TelegramEmulator

from .conftest import RunningBot, make_settings, new_bot, rows


class BotBug(Exception):
    pass


def shop_dispatcher(seen_errors: list[BaseException]) -> Dispatcher:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Welcome!")

    @dp.message(Command("boom"))
    async def boom(message: Message) -> None:
        raise BotBug("the bot's own bug")

    @dp.message(Command("webhook_reply"))
    async def webhook_reply(message: Message) -> SendMessage:
        return message.answer("returned as a method")

    @dp.message(F.text.contains("human"))
    async def human(message: Message, analytics: UpdateContext) -> None:
        analytics.mark_escalated()
        await message.answer("A person will take over.")

    @dp.message(F.text.startswith("intent:"))
    async def override(message: Message, analytics: UpdateContext) -> None:
        analytics.set_intent((message.text or "").split(":", 1)[1])
        await message.answer("noted")

    @dp.message(F.text == "two replies")
    async def two(message: Message) -> None:
        await message.answer("first")
        await message.answer("second")

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}"[:4096])

    @dp.callback_query(F.data.startswith("buy:"))
    async def buy(query: CallbackQuery) -> None:
        await query.answer("Added to cart")

    @dp.pre_checkout_query()
    async def checkout(query: PreCheckoutQuery) -> None:
        await query.answer(ok=True)

    @dp.message(F.successful_payment)
    async def paid(message: Message) -> None:
        await message.answer("Thanks for paying")

    @dp.errors()
    async def on_error(event: ErrorEvent) -> bool:
        seen_errors.append(event.exception)
        return True

    return dp


async def test_interactions_are_recorded_with_replies_and_latency(
        database_url: str, tmp_path: Path, emulator: TelegramEmulator) -> None:
    token = emulator.add_bot("shop_bot")
    analytics = Analytics(make_settings(database_url, tmp_path))
    errors: list[BaseException] = []
    dp = shop_dispatcher(errors)
    analytics.setup(dp)
    bot = new_bot(emulator, token)
    alice = emulator.user("Alice", language_code="en")
    async with RunningBot(emulator, dp, [bot], analytics) as running:
        alice.start("spring_promo")
        await emulator.wait_for(lambda: len(alice.received()) >= 1)
        alice.send("I love this shop, great!")
        alice.send("/boom")
        alice.send("I need a human, this is terrible")
        alice.send_photo()  # no handler for photos
        alice.send("two replies")
        alice.send("/webhook_reply")
        alice.send("intent:refund")
        menu = alice.received()[0]
        alice.press(menu, "buy:premium")
        await running.settle(9)
        await alice.pay("USD", 2900, "plan:premium")
        await emulator.wait_for(lambda: any(m.get("text") == "Thanks for paying"
                                            for m in alice.received()))
        await running.settle(11)

    assert len(errors) == 1 and isinstance(errors[0], BotBug)  # untouched, same type
    got = {r.update_id: r for r in rows(database_url, "SELECT * FROM interactions")}
    assert len(got) == 11
    start = got[1]
    assert (start.event_type, start.intent, start.command, start.member_id, start.chat_id) == \
        ("message", "/start", "/start", alice.id, alice.id)
    assert start.response_text == "Welcome!" and start.reply_count == 1
    assert 0 < start.response_time_ms <= start.handler_time_ms
    love = got[2]
    assert love.sentiment == "positive" and love.sentiment_score >= 0.05
    assert love.intent == "unknown" and love.response_text == "echo: I love this shop, great!"
    boom = got[3]
    assert (boom.handled, boom.error, boom.response_text) in {(True, "BotBug", None),
                                                              (1, "BotBug", None)}
    human = got[4]
    assert human.intent == "escalate" and human.escalated and human.sentiment == "negative"
    photo = got[5]
    assert not photo.handled and photo.intent == "media" and photo.sentiment is None
    two = got[6]
    assert two.reply_count == 2 and two.response_text == "first"
    webhook = got[7]
    assert webhook.response_text == "returned as a method" and webhook.reply_count == 1
    assert got[8].intent == "refund" and got[8].intent_confidence == 1.0
    press = got[9]
    assert (press.event_type, press.intent, press.response_text) == \
        ("callback_query", "purchase", "Added to cart")
    kinds = {r.event_type for r in got.values()}
    assert {"pre_checkout_query", "successful_payment"} <= kinds
    # One session: every interaction followed the previous within 30 minutes.
    assert len({r.session_id for r in got.values()}) == 1
    member = rows(database_url, "SELECT * FROM members")
    assert len(member) == 1 and member[0].campaign == "spring_promo"
    events = rows(database_url, "SELECT kind, payload FROM member_events")
    assert [(e.kind, e.payload) for e in events] == [("start", "spring_promo")]
    health = analytics.health()
    assert health["written"] == 11 and health["dropped"] == 0
    assert health["capture_failures"] == 0 and health["enrichment_failures"] == 0


async def test_block_unblock_and_non_interactions(database_url: str, tmp_path: Path,
                                                  emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = shop_dispatcher([])
    analytics.setup(dp)
    bob = emulator.user("Bob")
    other_bot = emulator.user("Helper", is_bot=True)
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        bob.send("hello")
        other_bot.send("I am a bot")
        emulator.inject_raw(token, {"channel_post": {
            "message_id": 1, "date": 1, "chat": {"id": -100123, "type": "channel",
                                                 "title": "News"}, "text": "post"}})
        group = emulator.group("Team")
        emulator.inject(token, "message", {
            "message_id": 5, "date": 1, "chat": group, "text": "anonymous admin",
            "from": {"id": 1087968824, "is_bot": True, "first_name": "Group"},
            "sender_chat": group})
        bob.block()
        bob.unblock()
        # The channel post is not delivered: nothing asked for channel posts.
        await running.settle(5)

    got = rows(database_url, "SELECT member_id FROM interactions")
    assert [r.member_id for r in got] == [bob.id]
    kinds = [r.kind for r in rows(database_url,
                                  "SELECT kind FROM member_events ORDER BY update_id")]
    assert kinds == ["blocked", "unblocked"]
    assert rows(database_url, "SELECT blocked FROM members")[0].blocked in (False, 0)
    reasons = analytics.health()["skip_reasons"]
    assert reasons == {"from_bot": 1, "sender_chat": 1}


async def test_tenants_per_bot(database_url: str, tmp_path: Path,
                               emulator: TelegramEmulator) -> None:
    shop_token = emulator.add_bot("shop")
    help_token = emulator.add_bot("help")
    shop_id, help_id = (int(t.split(":")[0]) for t in (shop_token, help_token))
    settings = make_settings(database_url, tmp_path,
                             tenants={"default": "other", "bots": {shop_id: "acme"}})
    analytics = Analytics(settings)
    dp = shop_dispatcher([])
    analytics.setup(dp)
    bots = [new_bot(emulator, shop_token), new_bot(emulator, help_token)]
    async with RunningBot(emulator, dp, bots, analytics) as running:
        # One at a time, so that the middleware sees each bot again after the other one.
        order = (shop_token, shop_token, help_token, help_token, shop_token)
        for n, token in enumerate(order, 1):
            emulator.user("A", bot=token, user_id=5).send(f"hi number {n}")
            await running.settle(n)
        # Replies from both bots were tied to their updates.
        await emulator.wait_for(lambda: len(emulator.messages_to(5)) == len(order))
    got = sorted((r.text, r.tenant_id, r.bot_id) for r in
                 rows(database_url, "SELECT text, tenant_id, bot_id FROM interactions"))
    assert got == [("hi number 1", "acme", shop_id), ("hi number 2", "acme", shop_id),
                   ("hi number 3", "other", help_id), ("hi number 4", "other", help_id),
                   ("hi number 5", "acme", shop_id)]


async def test_redelivered_update_is_stored_once(database_url: str, tmp_path: Path,
                                                 emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = shop_dispatcher([])
    analytics.setup(dp)
    bot = new_bot(emulator, token)
    msg = {"message_id": 1, "date": 1, "chat": {"id": 42, "type": "private",
                                                "first_name": "R"},
           "from": {"id": 42, "is_bot": False, "first_name": "R"}, "text": "again"}
    async with RunningBot(emulator, dp, [bot], analytics) as running:
        emulator.inject_raw(token, {"update_id": 500, "message": msg})
        await running.settle(1)
    # The bot stopped before confirming update 500; Telegram offers it again.
    emulator.redeliver(token, {"update_id": 500, "message": msg})
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        await running.settle(2)
    assert analytics.health()["written"] == 2  # both deliveries reached the database...
    assert rows(database_url, "SELECT count(*) AS n FROM interactions")[0].n == 1  # ...once


async def test_privacy_redaction_pseudonyms_and_opt_out(
        database_url: str, tmp_path: Path, emulator: TelegramEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PSEUDO_KEY", "s3cret")
    token = emulator.add_bot()
    settings = make_settings(database_url, tmp_path, privacy={
        "pseudonymize_members": True, "secret_env": "TEST_PSEUDO_KEY",
        "optout_commands": True})
    analytics = Analytics(settings)
    dp = shop_dispatcher([])
    analytics.setup(dp)
    carol = emulator.user("Carol")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        carol.send("mail me at carol@example.com or +44 20 7946 0958, "
                   "card 4111 1111 1111 1111")
        await running.settle(1)
        carol.send("/optout")
        await emulator.wait_for(lambda: any("no longer" in (m.get("text") or "")
                                            for m in carol.received()))
        carol.send("this must not be stored")
        await running.settle(3)
        carol.send("/optin")
        await emulator.wait_for(lambda: any("again" in (m.get("text") or "")
                                            for m in carol.received()))
        carol.send("stored again")
        await running.settle(5)

    got = rows(database_url, "SELECT member_id, chat_id, text, response_text FROM interactions "
                             "ORDER BY update_id")
    texts = [r.text for r in got]
    assert texts == ["mail me at [email] or [phone], card [card]", "/optin", "stored again"]
    assert "carol@example.com" not in (got[0].response_text or "")
    stored = analytics.stored_member_id(carol.id)
    assert stored != carol.id
    assert {r.member_id for r in got} == {stored} and {r.chat_id for r in got} == {stored}
    kinds = [r.kind for r in rows(database_url, "SELECT kind FROM member_events ORDER BY ts, id")]
    assert kinds == ["opt_out", "opt_in"]
    assert analytics.health()["filtered_opt_out"] == 2  # "/optout" itself and the next one


async def test_store_text_false_keeps_no_text(database_url: str, tmp_path: Path,
                                              emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path,
                                        privacy={"store_text": False}))
    dp = shop_dispatcher([])
    analytics.setup(dp)
    dave = emulator.user("Dave")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        dave.send("I need a human")
        await running.settle(1)
    row = rows(database_url, "SELECT text, response_text, intent, sentiment FROM interactions")[0]
    assert (row.text, row.response_text) == (None, None)
    assert row.intent == "escalate" and row.sentiment == "neutral"


HARD_TEXTS = [
    "x" * 4096,
    "مرحبا، أريد التحدث إلى شخص",            # right-to-left
    "zero\u200bwidth\u200djoiner\ufeff",
    "emoji only 😀🎉👍🏽",
    "nul\x00byte",
    "lone \ud800 surrogate",
    " ",
]


async def test_hard_texts_are_stored_not_raised(database_url: str, tmp_path: Path,
                                                emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()
    replies: list[str] = []

    @dp.message()
    async def any_message(message: Message) -> None:
        replies.append(message.text or message.caption or "")

    analytics.setup(dp)
    erin = emulator.user("Erin", language_code=None)
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        for text in HARD_TEXTS:
            # Lone surrogates cannot cross HTTP as UTF-8: send the JSON escape, as a
            # client would; Telegram delivers it the same way.
            erin.send(text)
        erin.send_photo(caption="c" * 1024)
        await running.settle(len(HARD_TEXTS) + 1)
    got = rows(database_url, "SELECT text, sentiment FROM interactions ORDER BY update_id")
    assert len(got) == len(HARD_TEXTS) + 1
    assert len(got[0].text) == 4096
    assert got[4].text == "nulbyte"
    assert "\ud800" not in got[5].text and got[5].text.startswith("lone ")
    assert got[1].sentiment is None  # Arabic script: VADER cannot score it
    assert len(got[-1].text) == 1024
    assert analytics.health()["rejected"] == 0


async def test_analytics_failures_never_reach_the_bot(
        database_url: str, tmp_path: Path, emulator: TelegramEmulator) -> None:
    class BrokenDetector:
        def detect(self, events: Any) -> Any:
            raise RuntimeError("model exploded")

    class BrokenSentiment:
        def scores(self, texts: Any, langs: Any) -> Any:
            raise RuntimeError("lexicon missing")

    token = emulator.add_bot()
    analytics = Analytics(make_settings(database_url, tmp_path),
                          intent_detector=BrokenDetector(), sentiment_analyzer=BrokenSentiment())
    dp = shop_dispatcher([])
    analytics.setup(dp)
    fay = emulator.user("Fay")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        fay.send("hello there")
        fay.send("second")
        await running.settle(2)
        await emulator.wait_for(lambda: len(fay.received()) == 2)
    got = rows(database_url, "SELECT intent, sentiment, response_text FROM interactions")
    assert [(r.intent, r.sentiment) for r in got] == [(None, None), (None, None)]
    assert all(r.response_text.startswith("echo:") for r in got)
    assert analytics.health()["enrichment_failures"] == 4
