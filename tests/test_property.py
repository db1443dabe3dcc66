"""Random updates through a real dispatcher: the plugin records exactly the interactions,
never raises into the bot, and lets the bot's own exceptions through untouched."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot_analytics import Analytics
from bot_analytics.emulator import MemorySession
from bot_analytics.nlp.sentiment import VaderAnalyzer
from bot_analytics.storage import db

from .conftest import make_settings


class HandlerBug(Exception):
    pass


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=300) | \
    st.sampled_from(["", "/start promo", "/help", "x" * 4096, "a\x00b", "\ud83d lone",
                     "مرحبا", "I need a human!!!", "😀" * 50])

KINDS = ["text", "caption", "edited", "callback", "inline", "checkout", "poll", "block",
         "channel", "from_bot", "sender_chat", "no_sender"]
INTERACTION_KINDS = {"text", "caption", "edited", "callback", "inline", "checkout", "poll"}

update_spec = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS),
    "user": st.integers(1, 2**40),
    "text": any_text,
    "lang": st.sampled_from([None, "en", "de", "ar", "en-GB", "x" * 20]),
    "behaviour": st.sampled_from(["reply", "silent", "raise", "unhandled"]),
})


def build_update(update_id: int, spec: dict[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = {"id": spec["user"], "is_bot": False, "first_name": "P"}
    if spec["lang"]:
        user["language_code"] = spec["lang"]
    chat = {"id": spec["user"], "type": "private", "first_name": "P"}
    msg: dict[str, Any] = {"message_id": 1, "date": 1, "chat": chat, "from": user}
    kind, text = spec["kind"], spec["text"]
    bot_user = {"id": 1, "is_bot": True, "first_name": "Bot"}
    if kind == "text":
        return {"update_id": update_id, "message": {**msg, "text": text}}
    if kind == "caption":
        return {"update_id": update_id, "message": {**msg, "caption": text[:1024], "photo": [
            {"file_id": "f", "file_unique_id": "f", "width": 1, "height": 1}]}}
    if kind == "edited":
        return {"update_id": update_id, "edited_message": {**msg, "text": text, "edit_date": 2}}
    if kind == "callback":
        return {"update_id": update_id, "callback_query": {
            "id": "q", "from": user, "chat_instance": "c", "data": text[:64],
            "message": {**msg, "text": "menu"}}}
    if kind == "inline":
        return {"update_id": update_id, "inline_query": {"id": "i", "from": user,
                                                         "query": text, "offset": ""}}
    if kind == "checkout":
        return {"update_id": update_id, "pre_checkout_query": {
            "id": "p", "from": user, "currency": "USD", "total_amount": 100,
            "invoice_payload": text[:128]}}
    if kind == "poll":
        return {"update_id": update_id, "poll_answer": {
            "poll_id": "p", "user": user, "option_ids": [0], "option_persistent_ids": ["a"]}}
    if kind == "block":
        return {"update_id": update_id, "my_chat_member": {
            "chat": chat, "from": user, "date": 1,
            "old_chat_member": {"status": "member", "user": bot_user},
            "new_chat_member": {"status": "kicked", "user": bot_user, "until_date": 0}}}
    if kind == "channel":
        return {"update_id": update_id, "channel_post": {
            "message_id": 1, "date": 1, "text": text,
            "chat": {"id": -100, "type": "channel", "title": "C"}}}
    if kind == "from_bot":
        return {"update_id": update_id, "message": {**msg, "text": text,
                                                    "from": {**user, "is_bot": True}}}
    if kind == "sender_chat":
        group = {"id": -5, "type": "supergroup", "title": "G"}
        return {"update_id": update_id, "message": {**msg, "chat": group, "text": text,
                                                    "sender_chat": group}}
    return {"update_id": update_id, "message": {"message_id": 1, "date": 1, "text": text,
                                                "chat": {"id": -5, "type": "group",
                                                         "title": "G"}}}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("prop") / "prop.sqlite3"
    url = f"sqlite:///{path}"
    db.upgrade(db.create_db_engine(url))
    return url


@pytest.fixture(scope="module")
def vader() -> VaderAnalyzer:
    return VaderAnalyzer()


_tenants = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(specs=st.lists(update_spec, min_size=1, max_size=25))
def test_random_updates(specs: list[dict[str, Any]], template_db: str, vader: VaderAnalyzer,
                        tmp_path: Path) -> None:
    tenant = f"t{next(_tenants)}"
    s = make_settings(template_db, tmp_path, tenants={"default": tenant})
    analytics = Analytics(s, sentiment_analyzer=vader)
    dp = Dispatcher()
    analytics.setup(dp)
    behaviour_of: dict[int, str] = {}

    async def handle(event: Any, event_update: Update) -> Any:
        b = behaviour_of[event_update.update_id]
        if b == "raise":
            raise HandlerBug(event_update.update_id)
        if b == "reply" and event_update.message is not None:
            await event.answer("ok")
        return None

    for observer in ("message", "edited_message", "callback_query", "inline_query",
                     "pre_checkout_query", "poll_answer", "my_chat_member", "channel_post"):
        dp.observers[observer].register(handle, lambda e, event_update: behaviour_of[
            event_update.update_id] != "unhandled")

    async def run() -> None:
        bot = Bot("42:TEST", session=MemorySession())
        for i, spec in enumerate(specs, start=1):
            behaviour_of[i] = spec["behaviour"]
            update = Update.model_validate(build_update(i, spec), context={"bot": bot})
            try:
                await dp.feed_update(bot, update)
            except HandlerBug as exc:
                assert spec["behaviour"] == "raise" and exc.args == (i,)
            else:
                assert spec["behaviour"] != "raise"
        assert await analytics.close(30)

    asyncio.run(run())
    expected = [i for i, spec in enumerate(specs, start=1) if spec["kind"] in INTERACTION_KINDS]
    engine = sa.create_engine(template_db)
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT update_id, handled, error, text FROM interactions WHERE tenant_id = :t "
            "ORDER BY update_id"), {"t": tenant}).all()
    engine.dispose()
    assert [r.update_id for r in got] == expected
    for r in got:
        spec = specs[r.update_id - 1]
        assert bool(r.handled) == (spec["behaviour"] != "unhandled")
        assert (r.error == "HandlerBug") == (spec["behaviour"] == "raise")
        if r.text is not None:
            assert "\x00" not in r.text
            r.text.encode("utf-8")
    h = analytics.health()
    assert h["capture_failures"] == 0 and h["rejected"] == 0 and h["dropped"] == 0
