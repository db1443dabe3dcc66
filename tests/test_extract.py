"""Reading updates: every interaction type and every reason to skip."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import methods
from aiogram.types import LabeledPrice, Update

from bot_analytics.capture.extract import (
    Facts,
    is_reply,
    parse_command,
    read_request,
    read_update,
    reply_text,
)
from bot_analytics.events import Skipped

USER = {"id": 11, "is_bot": False, "first_name": "U", "language_code": "pt-BR"}
BOT = {"id": 99, "is_bot": True, "first_name": "B"}
PRIVATE = {"id": 11, "type": "private", "first_name": "U"}
GROUP = {"id": -500, "type": "supergroup", "title": "G"}


def upd(**kind: Any) -> Update:
    return Update.model_validate({"update_id": 1, **kind})


def msg(**extra: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1, "chat": PRIVATE, "from": USER, **extra}


@pytest.mark.parametrize(("text", "expected"), [
    ("/start", ("/start", None)), ("/Start@shop_bot promo_1", ("/start", "promo_1")),
    ("/buy  two  words ", ("/buy", "two  words")), ("/", (None, None)),
    ("hello /start", (None, None)), ("/😀", (None, None))])
def test_parse_command(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_command(text) == expected


def test_interaction_types() -> None:
    f = read_update(upd(message=msg(text="/start camp")))
    assert isinstance(f, Facts)
    assert (f.event_type, f.member_id, f.chat_id, f.chat_type, f.language_code, f.command,
            f.command_args) == ("message", 11, 11, "private", "pt-BR", "/start", "camp")
    f = read_update(upd(message=msg(photo=[{"file_id": "a", "file_unique_id": "a",
                                            "width": 1, "height": 1}], caption="look")))
    assert isinstance(f, Facts) and f.text == "look" and f.command is None
    f = read_update(upd(edited_message=msg(text="fixed", edit_date=2)))
    assert isinstance(f, Facts) and (f.event_type, f.text) == ("edited_message", "fixed")
    f = read_update(upd(callback_query={"id": "q", "from": USER, "chat_instance": "c",
                                        "data": "buy:1", "message": msg(text="menu")}))
    assert isinstance(f, Facts) and (f.event_type, f.chat_id, f.callback_data) == \
        ("callback_query", 11, "buy:1")
    f = read_update(upd(callback_query={"id": "q", "from": USER, "chat_instance": "c",
                                        "inline_message_id": "im", "data": "x"}))
    assert isinstance(f, Facts) and f.chat_id is None
    f = read_update(upd(inline_query={"id": "i", "from": USER, "query": "shoes",
                                      "offset": ""}))
    assert isinstance(f, Facts) and (f.event_type, f.text) == ("inline_query", "shoes")
    f = read_update(upd(chosen_inline_result={"result_id": "r", "from": USER, "query": "q"}))
    assert isinstance(f, Facts) and f.event_type == "chosen_inline_result"
    f = read_update(upd(pre_checkout_query={"id": "p", "from": USER, "currency": "USD",
                                            "total_amount": 100, "invoice_payload": "x"}))
    assert isinstance(f, Facts) and f.event_type == "pre_checkout_query"
    f = read_update(upd(message=msg(successful_payment={
        "currency": "XTR", "total_amount": 5, "invoice_payload": "x",
        "telegram_payment_charge_id": "c", "provider_payment_charge_id": "p"})))
    assert isinstance(f, Facts) and f.event_type == "successful_payment"
    f = read_update(upd(poll_answer={"poll_id": "p", "user": USER, "option_ids": [0],
                                     "option_persistent_ids": ["a"]}))
    assert isinstance(f, Facts) and f.event_type == "poll_answer"


def test_lifecycle_changes() -> None:
    def change(old: str, new: str, chat: dict[str, Any] = PRIVATE) -> Any:
        def member(status: str) -> dict[str, Any]:
            return {"status": status, "user": BOT, **({"until_date": 0}
                                                      if status == "kicked" else {})}
        return read_update(upd(my_chat_member={
            "chat": chat, "from": USER, "date": 1, "old_chat_member": member(old),
            "new_chat_member": member(new)}))

    assert change("member", "kicked").lifecycle == "blocked"
    assert change("kicked", "member").lifecycle == "unblocked"
    assert change("member", "member") == Skipped("membership_unchanged")
    assert change("member", "kicked", GROUP) == Skipped("group_membership")


def test_skip_reasons() -> None:
    assert read_update(upd(message={"message_id": 1, "date": 1, "chat": GROUP, "text": "x"})) \
        == Skipped("no_sender")
    assert read_update(upd(message=msg(**{"from": BOT, "text": "x"}))) == Skipped("from_bot")
    assert read_update(upd(message=msg(sender_chat=GROUP, text="x"))) == Skipped("sender_chat")
    assert read_update(upd(channel_post={"message_id": 1, "date": 1, "text": "x", "chat": {
        "id": -1001, "type": "channel", "title": "C"}})) == Skipped("channel_post")
    assert read_update(upd(poll_answer={"poll_id": "p", "voter_chat": GROUP, "option_ids": [0],
                                        "option_persistent_ids": ["a"]})) \
        == Skipped("anonymous_poll_answer")
    address = {"country_code": "DE", "state": "", "city": "Berlin", "street_line1": "A 1",
               "street_line2": "", "post_code": "10115"}
    assert read_update(upd(shipping_query={"id": "s", "from": USER, "invoice_payload": "x",
                                           "shipping_address": address})) \
        == Skipped("type:shipping_query")


@pytest.mark.parametrize(("method", "kind", "chat", "reply", "text"), [
    (methods.SendMessage(chat_id=11, text="hi"), "message", 11, True, "hi"),
    (methods.SendMessage(chat_id=12, text="hi"), "message", 11, False, "hi"),  # another chat
    (methods.SendPhoto(chat_id=11, photo="file-1", caption="look"), "message", 11, True,
     "look"),
    (methods.SendInvoice(chat_id=11, title="Premium", description="A month of Premium",
                         payload="p", currency="XTR",
                         prices=[LabeledPrice(label="Premium", amount=5)]),
     "message", 11, True, "A month of Premium"),
    (methods.EditMessageText(inline_message_id="im", text="edited"), "callback_query", None,
     True, "edited"),  # an inline message's edit addresses no chat
    (methods.AnswerCallbackQuery(callback_query_id="c", text="Done"), "callback_query", None,
     True, "Done"),
    (methods.AnswerCallbackQuery(callback_query_id="c"), "callback_query", None, False, None),
    (methods.AnswerCallbackQuery(callback_query_id="c", text="Done"), "message", 11, False,
     "Done"),
    (methods.AnswerInlineQuery(inline_query_id="q", results=[]), "inline_query", None, True,
     None),
    (methods.GetMe(), "message", 11, False, None),
])
def test_requests_are_read_into_what_matching_replies_needs(
        method: Any, kind: str, chat: int | None, reply: bool, text: str | None) -> None:
    request = read_request(method, 2.5)
    assert request[0] == method.__api_method__ and request[3] == 2.5
    assert is_reply(request, kind, chat) is reply
    assert reply_text(request) == text


def test_an_object_that_is_no_bot_api_method_cannot_be_read() -> None:
    with pytest.raises(AttributeError):
        read_request(object(), 0.0)
