"""The capture middleware's record of one update: when it was received, and what a
handler's background task changes after the handler has returned."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram import Bot, Dispatcher, Router
from aiogram.types import ErrorEvent, Message, Update

from bot_analytics import Analytics, UpdateContext
from bot_analytics.capture.extract import Facts
from bot_analytics.capture.middleware import capture_middleware
from bot_analytics.capture.requests import reply_middleware
from bot_analytics.emulator import MemorySession
from bot_analytics.storage import db
from bot_analytics.storage.queries import INTERACTIONS

from .conftest import make_settings, rows


def message_update(bot: Bot, update_id: int, text: str) -> Update:
    person = {"id": 7, "is_bot": False, "first_name": "Ann"}
    return Update.model_validate({"update_id": update_id, "message": {
        "message_id": update_id, "date": 1, "text": text, "from": person,
        "chat": {"id": 7, "type": "private", "first_name": "Ann"}}}, context={"bot": bot})


async def answering_ok(analytics: Analytics) -> tuple[Dispatcher, Bot]:
    """A dispatcher whose one handler answers every message "ok", with ``analytics`` set
    up and started, and a bot on an in-memory session."""
    dp = Dispatcher()

    @dp.message()
    async def handler(message: Message) -> None:
        await message.answer("ok")

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await analytics.start()
    return dp, bot


async def test_received_time_is_the_wall_clock_time_the_update_arrived(
        database_url: str, tmp_path: Path) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()

    @dp.message()
    async def slow(message: Message) -> None:
        await asyncio.sleep(0.2)  # the handler's time is not the arrival time

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    before = datetime.now(UTC)
    await dp.feed_update(bot, message_update(bot, 1, "hello"))
    after = datetime.now(UTC)
    await analytics.close()
    engine = db.create_db_engine(database_url)
    try:
        with engine.connect() as conn:  # the table's own type reads aware UTC times
            ts, handler_ms = conn.execute(sa.select(
                INTERACTIONS.c.ts, INTERACTIONS.c.handler_time_ms)).one()
    finally:
        engine.dispose()
    tolerance = timedelta(milliseconds=5)
    assert before - tolerance <= ts <= before + timedelta(milliseconds=50), (before, ts)
    assert after - ts >= timedelta(milliseconds=200)
    assert handler_ms >= 200


async def test_what_a_task_does_after_the_handler_returned_is_not_the_interactions(
        database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()
    go = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def later(message: Message, analytics: UpdateContext) -> None:
        await go.wait()
        await message.answer("a follow-up, sent after the handler returned")
        analytics.mark_escalated()
        analytics.set_intent("late_intent")
        analytics.track_conversion("purchased", 5.0, "EUR")

    @dp.message()
    async def handler(message: Message, analytics: UpdateContext) -> None:
        await message.answer("first")
        tasks.append(asyncio.get_running_loop().create_task(later(message, analytics)))

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await dp.feed_update(bot, message_update(bot, 1, "hi"))
    with caplog.at_level(logging.WARNING, logger="bot_analytics"):
        go.set()
        await asyncio.gather(*tasks)
    await analytics.close()

    (row,) = rows(database_url, "SELECT reply_count, response_text, escalated, intent "
                                "FROM interactions")
    assert (row.reply_count, row.response_text) == (1, "first")
    assert not row.escalated and row.intent != "late_intent"
    # A conversion is an outcome of its own: it is stored even when tracked late.
    (conv,) = rows(database_url, "SELECT outcome, value, currency FROM conversions")
    assert (conv.outcome, float(conv.value), conv.currency) == ("purchased", 5.0, "EUR")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "mark_escalated() was called after the handler" in warned
    assert "set_intent() was called after the handler" in warned


async def test_a_broadcast_from_one_handler_counts_every_reply(
        database_url: str, tmp_path: Path) -> None:
    """More requests than the context keeps unread: those are read while the handler
    still runs, and the count and the first reply come out the same."""
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()
    sent = 150

    @dp.message()
    async def broadcast(message: Message, bot: Bot) -> None:
        await bot.send_message(99, "to someone else")  # not a reply to this chat
        for i in range(sent):
            await message.answer(f"part {i}")
            if i == 100:
                await bot.get_me()  # not a reply either

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await dp.feed_update(bot, message_update(bot, 1, "all of it"))
    await analytics.close()
    (row,) = rows(database_url, "SELECT reply_count, response_text, response_time_ms, "
                                "handler_time_ms FROM interactions")
    assert (row.reply_count, row.response_text) == (sent, "part 0")
    assert 0 < row.response_time_ms < row.handler_time_ms
    assert analytics.health()["capture_failures"] == 0


@pytest.mark.parametrize(("to", "expected"), [
    ([99], (0, None)),             # one request, to another chat: no reply
    ([7], (1, "message 0")),       # one reply to the person's chat (7)
    ([99, 7], (1, "message 1")),   # the reply is the second request
    ([7, 7], (2, "message 0")),    # two replies: the first one's text
])
async def test_replies_are_told_from_other_requests_whatever_their_number(
        database_url: str, tmp_path: Path, to: list[int], expected: tuple[int, str | None]
) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()

    @dp.message()
    async def handler(message: Message, bot: Bot) -> None:
        for i, chat in enumerate(to):
            await bot.send_message(chat, f"message {i}")

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await dp.feed_update(bot, message_update(bot, 1, "hi"))
    await analytics.close()
    (row,) = rows(database_url, "SELECT reply_count, response_text FROM interactions")
    assert (row.reply_count, row.response_text) == expected


@pytest.mark.parametrize("unreadable_first", [False, True])
async def test_a_request_that_cannot_be_read_keeps_the_interaction(
        database_url: str, tmp_path: Path, unreadable_first: bool) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()

    async def sent(bot: Bot, method: object) -> bool:
        return True

    @dp.message()
    async def handler(message: Message, analytics: UpdateContext) -> None:
        if unreadable_first:  # through the request middleware, before any other request
            await reply_middleware(sent, message.bot, object())
        await message.answer("ok")
        if not unreadable_first:
            analytics.note_request(object(), 0.0)  # no Bot API method at all

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await dp.feed_update(bot, message_update(bot, 1, "hi"))
    await analytics.close()
    (row,) = rows(database_url, "SELECT reply_count, response_text FROM interactions")
    assert (row.reply_count, row.response_text) == (1, "ok")
    assert analytics.health()["capture_failures"] == 1


async def test_the_middleware_wakes_the_writer_for_a_full_batch_and_drops_past_the_bound(
        database_url: str, tmp_path: Path) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path, writer={
        "flush_at": 3, "queue_size": 4, "flush_interval": 60}))
    dp, bot = await answering_ok(analytics)
    await dp.feed_update(bot, message_update(bot, 1, "hi"))  # a bot seen for the first time
    assert await analytics.flush(10)
    for update_id in range(2, 7):  # back to back: the writer gets no turn in between
        await dp.feed_update(bot, message_update(bot, update_id, "hi"))
    # Updates 2 and 3 are queued; 4 fills a batch of flush_at and wakes the writer; 5 is
    # the fourth and last the queue holds; 6 finds it full.
    health = analytics.health()
    assert (health["updates"], health["in_queue"], health["dropped"]) == (6, 4, 1)
    # The writer waits up to flush_interval (a minute) unless woken.
    for _ in range(200):
        if analytics.health()["written"] == 5:
            break
        await asyncio.sleep(0.05)
    assert analytics.health()["written"] == 5
    await analytics.close()
    stored = rows(database_url, "SELECT update_id FROM interactions ORDER BY update_id")
    assert [row.update_id for row in stored] == [1, 2, 3, 4, 5]


async def test_an_update_without_a_bot_is_handled_counted_and_kept(
        database_url: str, tmp_path: Path) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    capture = capture_middleware(analytics)
    seen: list[UpdateContext] = []

    async def handler(event: Update, data: dict[str, object]) -> str:
        ctx = data["analytics"]
        assert isinstance(ctx, UpdateContext)
        seen.append(ctx)
        return "the handler's own result"

    bot = Bot("42:TEST", session=MemorySession())
    result = await capture(handler, message_update(bot, 1, "hi"), {})  # no "bot" key
    assert result == "the handler's own result" and len(seen) == 1
    assert analytics.health()["capture_failures"] == 1
    await analytics.close()
    # Kept all the same, under no bot (0) and the default tenant.
    (row,) = rows(database_url, "SELECT update_id, bot_id, tenant_id, text FROM interactions")
    assert tuple(row) == (1, 0, "default", "hi")


async def test_the_context_reaches_every_handler_the_bots_middlewares_and_error_handlers(
        database_url: str, tmp_path: Path) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()
    seen: dict[str, object] = {}

    async def own_inner(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.setdefault("bot's inner middleware", data.get("analytics"))
        return await handler(event, data)

    dp.message.middleware(own_inner)

    def wants(text: str) -> Any:
        def check(message: Message, analytics: UpdateContext) -> bool:
            seen.setdefault(f"filter {text}", analytics)
            return message.text == text
        return check

    child = Router()

    @child.message(wants("escalate"))
    async def escalate(message: Message, analytics: UpdateContext) -> None:
        seen["child router"] = analytics
        analytics.mark_escalated()
        analytics.set_intent("human_please")

    @child.message(wants("fail"))
    async def fail(message: Message) -> None:
        raise LookupError("the bot's own failure")

    @dp.errors()
    async def on_error(event: ErrorEvent, analytics: UpdateContext) -> bool:
        seen["error handler"] = analytics
        return True

    dp.include_router(child)
    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await dp.feed_update(bot, message_update(bot, 1, "escalate"))
    ctx = seen["child router"]
    assert isinstance(ctx, UpdateContext) and ctx.update_id == 1
    assert seen["bot's inner middleware"] is ctx and seen["filter escalate"] is ctx
    await dp.feed_update(bot, message_update(bot, 2, "fail"))
    failed = seen["error handler"]
    assert isinstance(failed, UpdateContext) and failed.update_id == 2
    assert failed.error == "LookupError"
    await analytics.close()
    stored = rows(database_url, "SELECT update_id, escalated, intent, error FROM interactions "
                                "ORDER BY update_id")
    assert [(row.update_id, bool(row.escalated), row.error) for row in stored] == [
        (1, True, None), (2, False, "LookupError")]
    assert stored[0].intent == "human_please"  # set by the child router's handler


async def test_a_queued_context_holds_what_the_writer_needs_not_the_update(
        database_url: str, tmp_path: Path) -> None:
    """Once the handler is done, the context keeps what the update says rather than the
    update: the update's objects are freed with the bot's, not held until the writer's
    batch. Both ways onto the queue (the middleware's own and finish(), taken here by
    an update that raises) do it, and the rows are as the update said."""
    analytics = Analytics(make_settings(database_url, tmp_path, writer={
        "flush_at": 100, "flush_interval": 60}))
    dp = Dispatcher()

    @dp.message()
    async def handler(message: Message) -> None:
        await message.answer(f"got {message.text}")
        if message.text == "/fail now":
            raise RuntimeError("the bot's own error")

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await analytics.start()
    assert await analytics.flush(10)
    updates = [message_update(bot, 10, "hello"), message_update(bot, 11, "/fail now")]
    await dp.feed_update(bot, updates[0])
    with pytest.raises(RuntimeError):
        await dp.feed_update(bot, updates[1])
    queued = list(analytics.writer._buf)
    assert [type(c) for c in queued] == [UpdateContext, UpdateContext]
    assert [c.update for c in queued] == [None, None]
    assert [c.update_id for c in queued] == [10, 11]
    assert [(c.member_id, c.chat_id, c.command) for c in queued] == [
        (7, 7, None), (7, 7, "/fail")]
    for update in updates:  # nothing the plugin keeps refers to them any more
        assert not any(isinstance(r, UpdateContext) for r in gc.get_referrers(update))
    await analytics.close()
    stored = rows(database_url, "SELECT update_id, member_id, text, command, error, "
                                "response_text, reply_count FROM interactions "
                                "ORDER BY update_id")
    assert [tuple(r) for r in stored] == [
        (10, 7, "hello", None, None, "got hello", 1),
        (11, 7, "/fail now", "/fail", "RuntimeError", "got /fail now", 1)]


def _message(update_id: int, **fields: Any) -> dict[str, Any]:
    person = {"id": 5, "is_bot": False, "first_name": "Bo", "language_code": "de"}
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1, "from": person,
        "chat": {"id": -100, "type": "group", "title": "G"}, **fields}}


async def test_what_the_middleware_reads_of_a_message_is_what_the_update_says(
        database_url: str, tmp_path: Path) -> None:
    """The middleware reads the usual message itself when it lets go of the update, and
    leaves the others (a bot's, a channel's, one without a sender, a payment) to
    detach(): each queued context says what its update said, and the rows agree."""
    analytics = Analytics(make_settings(database_url, tmp_path, writer={
        "flush_at": 100, "flush_interval": 60}))
    dp = Dispatcher()

    @dp.message()
    async def handler(message: Message) -> None:
        return None

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await analytics.start()
    assert await analytics.flush(10)
    photo = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
    paid = {"currency": "EUR", "total_amount": 1250, "invoice_payload": "plan",
            "telegram_payment_charge_id": "tg1", "provider_payment_charge_id": "p1"}
    raw = [
        _message(1, text="/Start@shop_bot promo"),
        _message(2, photo=photo, caption="/start in a caption"),
        _message(3, text="hello there"),
        _message(4, text="hi", **{"from": {"id": 6, "is_bot": False, "first_name": "C"}}),
        _message(5, text="beep", **{"from": {"id": 9, "is_bot": True, "first_name": "B"}}),
        _message(6, text="news", sender_chat={"id": -200, "type": "channel", "title": "C"}),
        {"update_id": 7, "message": {"message_id": 7, "date": 1, "text": "anon",
                                     "chat": {"id": -100, "type": "group", "title": "G"}}},
        _message(8, successful_payment=paid),
    ]
    for update in raw:
        await dp.feed_update(bot, Update.model_validate(update, context={"bot": bot}))
    queued = list(analytics.writer._buf)
    assert [c.update for c in queued] == [None] * 8
    facts = [c.facts for c in queued]
    read = [(f.event_type, f.member_id, f.chat_id, f.chat_type, f.language_code, f.text,
             f.command, f.command_args, f.payment is not None)
            if isinstance(f, Facts) else f.reason for f in facts]
    assert read == [
        ("message", 5, -100, "group", "de", "/Start@shop_bot promo", "/start", "promo",
         False),
        ("message", 5, -100, "group", "de", "/start in a caption", None, None, False),
        ("message", 5, -100, "group", "de", "hello there", None, None, False),
        ("message", 6, -100, "group", None, "hi", None, None, False),
        "from_bot", "sender_chat", "no_sender",
        ("successful_payment", 5, -100, "group", "de", None, None, None, True)]
    await analytics.close()
    stored = rows(database_url, "SELECT update_id, event_type, member_id, language_code, "
                                "text, command FROM interactions ORDER BY update_id")
    assert [tuple(r) for r in stored] == [
        (1, "message", 5, "de", "/Start@shop_bot promo", "/start"),
        (2, "message", 5, "de", "/start in a caption", None),
        (3, "message", 5, "de", "hello there", None),
        (4, "message", 6, None, "hi", None),
        (8, "successful_payment", 5, "de", None, None)]


async def test_what_a_handler_read_of_the_update_is_not_read_again(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler that asks for the member reads the update once; letting go of it once
    the handler is done reuses that rather than reading the update a second time."""
    from bot_analytics.capture import context

    reads: list[int] = []
    real = context.read_update

    def counted(update: Any) -> Any:
        reads.append(update.update_id)
        return real(update)

    monkeypatch.setattr(context, "read_update", counted)
    analytics = Analytics(make_settings(database_url, tmp_path))
    dp = Dispatcher()
    asked: list[int | None] = []

    @dp.callback_query()
    async def on_button(query: Any, analytics: UpdateContext) -> None:
        asked.append(analytics.member_id)

    analytics.setup(dp)
    bot = Bot("42:TEST", session=MemorySession())
    await analytics.start()
    person = {"id": 7, "is_bot": False, "first_name": "Ann"}
    await dp.feed_update(bot, Update.model_validate({"update_id": 31, "callback_query": {
        "id": "q1", "from": person, "chat_instance": "c", "data": "buy",
        "message": {"message_id": 1, "date": 1, "text": "menu",
                    "chat": {"id": 7, "type": "private", "first_name": "Ann"}}}},
        context={"bot": bot}))
    assert asked == [7] and reads == [31]
    await analytics.close()
    stored = rows(database_url, "SELECT update_id, event_type, member_id FROM interactions")
    assert [tuple(r) for r in stored] == [(31, "callback_query", 7)]


async def test_a_survey_failure_does_not_lose_the_interaction(
        database_url: str, tmp_path: Path) -> None:
    """With surveys on, the context goes through finish(): a failure while noting the
    update for surveys is counted, and the interaction is still queued and stored."""
    analytics = Analytics(make_settings(database_url, tmp_path,
                                        feedback={"enabled": True}))
    assert analytics.surveys.active

    def broken(ctx: UpdateContext) -> None:
        raise RuntimeError("surveys are broken")

    analytics.surveys.after_update = broken  # type: ignore[method-assign]
    dp, bot = await answering_ok(analytics)
    await dp.feed_update(bot, message_update(bot, 21, "hello"))
    assert analytics.health()["capture_failures"] == 1
    await analytics.close()
    stored = rows(database_url, "SELECT update_id, text, response_text FROM interactions")
    assert [tuple(r) for r in stored] == [(21, "hello", "ok")]
