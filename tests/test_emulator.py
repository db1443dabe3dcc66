"""The offline Telegram speaks the Bot API's HTTP protocol to any client."""

from __future__ import annotations

import aiohttp

from bot_analytics.emulator import TelegramEmulator


async def test_json_form_and_errors_over_http(emulator: TelegramEmulator) -> None:
    token = emulator.add_bot("raw_bot")
    user = emulator.user("Raw")
    base = f"{emulator.base_url}/bot{token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/sendMessage",
                             json={"chat_id": user.id, "text": "json body",
                                   "reply_markup": {"inline_keyboard": []}}) as r:
            body = await r.json()
            assert r.status == 200 and body["ok"] is True
            assert body["result"]["text"] == "json body"
        async with http.post(f"{base}/sendMessage",
                             data={"chat_id": str(user.id), "text": "form body"}) as r:
            assert (await r.json())["result"]["chat"]["id"] == user.id
        async with http.post(f"{base}/sendMessage", json={"chat_id": user.id}) as r:
            assert r.status == 400
            assert (await r.json())["description"] == "Bad Request: message text is empty"
        async with http.post(f"{emulator.base_url}/bot1:wrong/getMe") as r:
            assert r.status == 401
        async with http.post(f"{base}/noSuchMethod") as r:
            assert r.status == 404
        emulator.fail_next("sendMessage", error_code=429,
                           description="Too Many Requests: retry after 3", retry_after=3)
        async with http.post(f"{base}/sendMessage",
                             json={"chat_id": user.id, "text": "x"}) as r:
            body = await r.json()
            assert r.status == 429 and body["parameters"] == {"retry_after": 3}
        user.send("hello")
        async with http.post(f"{base}/getUpdates", json={"offset": 0, "timeout": 1}) as r:
            updates = (await r.json())["result"]
            assert [u["message"]["text"] for u in updates] == ["hello"]
        # Confirming with a later offset removes the update; long polling then times out.
        async with http.post(f"{base}/getUpdates",
                             json={"offset": updates[-1]["update_id"] + 1, "timeout": 0.2}
                             ) as r:
            assert (await r.json())["result"] == []
    assert [m["text"] for m in user.received()] == ["json body", "form body"]


async def test_wire_session_encodes_requests_and_decodes_answers() -> None:
    from aiogram import Bot
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

    from bot_analytics.emulator import WireSession

    bot = Bot("42:WIRE", session=WireSession())
    markup = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="Buy", callback_data="buy")]])
    first = await bot.send_message(7, "Hello", reply_markup=markup)
    second = await bot.send_message(7, "Again")
    assert isinstance(first, Message) and first.text == "Hello" and first.chat.id == 7
    assert first.from_user is not None and first.from_user.id == 42  # the token's bot
    assert (first.message_id, second.message_id) == (1, 2)
    assert await bot.answer_callback_query("q1", text="ok") is True
    # The JSON answer is read by aiogram into a Message: dates become aware datetimes.
    assert first.date.tzinfo is not None
