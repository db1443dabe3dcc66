"""An offline Telegram: a Bot API server on loopback that speaks the real HTTP protocol.

Bots connect to it with aiogram's own HTTP client::

    emu = TelegramEmulator()
    await emu.start()
    token = emu.add_bot("shop_bot")
    bot = Bot(token, session=AiohttpSession(api=emu.api_server()))

Simulated people inject updates and read back what the bot sent::

    alice = emu.user("Alice")
    alice.start("spring_campaign")       # /start with a deep-link payload
    alice.send("where is my order?")
    await emu.wait_for(lambda: alice.received())
    print(alice.received()[-1]["text"])

The methods a bot calls are answered as Telegram answers them (``{"ok": true, "result":
...}``), from form, multipart or JSON bodies. ``fail_next`` makes the next call of a
method fail with a chosen error (flood control, forbidden, ...).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiohttp import web

Json = dict[str, Any]

#: Parameters sent as JSON-encoded strings in form bodies.
_JSON_PARAMS = frozenset({
    "reply_markup", "entities", "caption_entities", "prices", "allowed_updates", "commands",
    "scope", "results", "media", "options", "reply_parameters", "link_preview_options",
    "provider_data", "suggested_tip_amounts", "shipping_options", "message_ids", "button",
})
_INT_PARAMS = frozenset({
    "chat_id", "message_id", "offset", "limit", "timeout", "from_chat_id", "cache_time",
    "reply_to_message_id", "max_tip_amount", "message_thread_id", "user_id", "retry_after",
})
_SEND_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice",
    "sendAnimation", "sendSticker", "sendInvoice", "sendLocation", "sendContact", "sendDice",
    "sendPoll", "sendVideoNote", "copyMessage", "forwardMessage",
})


class EmulatorError(RuntimeError):
    pass


@dataclass
class Call:
    """One Bot API call a bot made."""

    bot_id: int
    method: str
    params: Json
    ok: bool
    result: Any
    at: float


@dataclass
class _BotState:
    token: str
    user: Json
    updates: list[Json] = field(default_factory=list)
    next_update_id: int = 1
    confirmed: int = 0  # every update with id < confirmed was acknowledged
    allowed: list[str] | None = None
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    commands: list[Json] = field(default_factory=list)


@dataclass
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    times: int


class TelegramEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time):
        self.host = host
        self.port = port
        self.clock = clock
        self.calls: list[Call] = []
        self._bots: dict[str, _BotState] = {}
        self._bot_ids = itertools.count(7_000_000_001)
        self._user_ids = itertools.count(100_001)
        self._group_ids = itertools.count(1_000_000_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._query_ids = itertools.count(1)
        self._failures: dict[tuple[str, str], _Failure] = {}
        self._blocked: set[tuple[int, int]] = set()  # (bot id, user id)
        self._channels: dict[int, Json] = {}             # channel id -> chat
        self._outside: set[tuple[int, int]] = set()      # (bot id, chat id) it may not post in
        self._pending_checkouts: dict[str, asyncio.Future[bool]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- server -----------------------------------------------------------------------
    async def start(self) -> TelegramEmulator:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        sockets = getattr(self._site._server, "sockets", None)
        assert sockets, "the emulator's server did not open a socket"
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for state in self._bots.values():
            async with state.cond:
                state.cond.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def api_server(self) -> Any:
        """``TelegramAPIServer`` for ``AiohttpSession(api=...)``."""
        from aiogram.client.telegram import TelegramAPIServer

        return TelegramAPIServer.from_base(self.base_url)

    # -- bots and people -----------------------------------------------------------------
    def add_bot(self, username: str = "test_bot", first_name: str = "Test Bot") -> str:
        bot_id = next(self._bot_ids)
        token = f"{bot_id}:AAE{bot_id:x}emulated{len(self._bots)}"
        self._bots[token] = _BotState(token, {
            "id": bot_id, "is_bot": True, "first_name": first_name, "username": username,
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": True})
        return token

    def bot_user(self, token: str) -> Json:
        return self._state(token).user

    def user(self, first_name: str = "User", *, bot: str | None = None,
             language_code: str | None = "en", username: str | None = None,
             user_id: int | None = None, is_bot: bool = False) -> SimUser:
        """A simulated person talking to ``bot`` (the only bot when there is one)."""
        token = bot or self._only_bot()
        uid = user_id if user_id is not None else next(self._user_ids)
        info: Json = {"id": uid, "is_bot": is_bot, "first_name": first_name}
        if username:
            info["username"] = username
        if language_code:
            info["language_code"] = language_code
        return SimUser(self, token, info)

    def group(self, title: str = "Group") -> Json:
        return {"id": -next(self._group_ids), "type": "supergroup", "title": title}

    def channel(self, title: str = "Channel") -> Json:
        """A channel the bots may post in (``remove_from_chat`` takes that away)."""
        chat_id = -1_001_000_000_000 - len(self._channels) - 1
        chat = {"id": chat_id, "type": "channel", "title": title}
        self._channels[chat_id] = chat
        return chat

    def remove_from_chat(self, token: str, chat_id: int) -> None:
        """The bot is no longer a member of the chat: posting there is Forbidden (403)."""
        self._outside.add((self.bot_user(token)["id"], chat_id))

    def _only_bot(self) -> str:
        if len(self._bots) != 1:
            raise EmulatorError(f"{len(self._bots)} bots registered: pass bot=TOKEN")
        return next(iter(self._bots))

    def _state(self, token: str) -> _BotState:
        try:
            return self._bots[token]
        except KeyError:
            raise EmulatorError("unknown bot token") from None

    def next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    # -- updates ----------------------------------------------------------------------------
    def inject(self, token: str, kind: str, payload: Json) -> int:
        """Queue an update of type ``kind`` (``message``, ``callback_query``...)."""
        state = self._state(token)
        update_id = state.next_update_id
        state.next_update_id += 1
        state.updates.append({"update_id": update_id, kind: payload})
        asyncio.get_running_loop().create_task(self._notify(state))
        return update_id

    def inject_raw(self, token: str, update: Json) -> int:
        """Queue an update given whole; its ``update_id`` is assigned here unless set."""
        state = self._state(token)
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = state.next_update_id
        state.next_update_id = max(state.next_update_id, update["update_id"] + 1)
        state.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify(state))
        return int(update["update_id"])

    def redeliver(self, token: str, update: Json) -> None:
        """Offer an update again, as Telegram does when a bot stopped before confirming
        it: the next ``getUpdates`` without a later offset returns it."""
        state = self._state(token)
        state.updates = sorted([*state.updates, dict(update)], key=lambda u: u["update_id"])
        state.confirmed = min(state.confirmed, int(update["update_id"]))

    @staticmethod
    async def _notify(state: _BotState) -> None:
        async with state.cond:
            state.cond.notify_all()

    def pending(self, token: str | None = None) -> int:
        """Updates not yet acknowledged by the bot (``getUpdates`` with a later offset)."""
        states = [self._state(token)] if token else list(self._bots.values())
        return sum(1 for s in states for u in s.updates if u["update_id"] >= s.confirmed)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator: condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    # -- failures -----------------------------------------------------------------------------
    def fail_next(self, method: str, *, error_code: int = 400,
                  description: str = "Bad Request: emulated failure",
                  retry_after: int | None = None, token: str | None = None,
                  times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail as Telegram would."""
        self._failures[(token or "*", method)] = _Failure(error_code, description,
                                                          retry_after, times)

    def _take_failure(self, token: str, method: str) -> _Failure | None:
        for key in ((token, method), ("*", method)):
            failure = self._failures.get(key)
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[key]
                return failure
        return None

    # -- reading back ---------------------------------------------------------------------
    def calls_of(self, method: str | None = None, token: str | None = None) -> list[Call]:
        bot_id = self._state(token).user["id"] if token else None
        return [c for c in self.calls if (method is None or c.method == method)
                and (bot_id is None or c.bot_id == bot_id)]

    def messages_to(self, chat_id: int, token: str | None = None) -> list[Json]:
        """Messages bots sent to a chat, oldest first."""
        bot_id = self._state(token).user["id"] if token else None
        return [c.result for c in self.calls
                if c.ok and c.method in _SEND_METHODS and isinstance(c.result, dict)
                and c.result.get("chat", {}).get("id") == chat_id
                and (bot_id is None or c.bot_id == bot_id)]

    # -- HTTP ------------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> Json:
        params: Json = dict(request.query)
        ctype = request.content_type
        if request.can_read_body:
            if ctype == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise EmulatorError("Bad Request: JSON body must be an object")
                params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, str):
                        params[key] = value
                    elif isinstance(value, bytes | bytearray):
                        params[key] = {"file_name": None, "size": len(value),
                                       "content": bytes(value)}
                    else:  # an uploaded file: kept, so tests can look at it
                        data = value.file.read()
                        params[key] = {"file_name": value.filename, "size": len(data),
                                       "content": data}
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://") \
                    and isinstance(params.get(value[9:]), dict):
                params[key] = params.pop(value[9:])  # a file sent beside its field
                continue
            if isinstance(value, str):
                if key in _JSON_PARAMS:
                    try:
                        params[key] = json.loads(value)
                    except ValueError:
                        raise EmulatorError(f"Bad Request: can't parse {key} JSON") from None
                elif key in _INT_PARAMS and value.lstrip("-").isdigit():
                    params[key] = int(value)
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        state = self._bots.get(token)
        if state is None:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        try:
            params = await self._params(request)
        except EmulatorError as exc:
            return self._error(400, str(exc))
        failure = self._take_failure(token, method)
        if failure is not None:
            self.calls.append(Call(state.user["id"], method, params, False, None, time.time()))
            return self._error(failure.error_code, failure.description, failure.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        try:
            result = await handler(state, params)
        except EmulatorError as exc:
            text = str(exc)
            code = 403 if text.startswith("Forbidden") else 400
            self.calls.append(Call(state.user["id"], method, params, False, None, time.time()))
            return self._error(code, text)
        if method != "getUpdates":
            self.calls.append(Call(state.user["id"], method, params, True, result, time.time()))
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
        body: Json = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=code)

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(body=b"emulated file", content_type="application/octet-stream")

    # -- methods -----------------------------------------------------------------------------
    async def _m_getMe(self, state: _BotState, p: Json) -> Json:
        return state.user

    async def _m_logOut(self, state: _BotState, p: Json) -> bool:
        return True

    async def _m_close(self, state: _BotState, p: Json) -> bool:
        return True

    async def _m_deleteWebhook(self, state: _BotState, p: Json) -> bool:
        if p.get("drop_pending_updates") in (True, "true", "True"):
            state.confirmed = state.next_update_id
        return True

    async def _m_getUpdates(self, state: _BotState, p: Json) -> list[Json]:
        offset = int(p.get("offset") or 0)
        limit = max(1, min(int(p.get("limit") or 100), 100))
        timeout = float(p.get("timeout") or 0)
        if p.get("allowed_updates") is not None:
            state.allowed = list(p["allowed_updates"]) or None
        if offset > state.confirmed:
            state.confirmed = offset
            state.updates = [u for u in state.updates if u["update_id"] >= offset]

        def ready() -> list[Json]:
            out = []
            for u in state.updates:
                if u["update_id"] < state.confirmed:
                    continue
                kind = next(k for k in u if k != "update_id")
                if state.allowed is not None and kind not in state.allowed:
                    continue
                out.append(u)
                if len(out) >= limit:
                    break
            return out

        found = ready()
        if found or timeout <= 0:
            return found
        deadline = time.monotonic() + timeout
        async with state.cond:
            while not found and self._runner is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(state.cond.wait(), remaining)
                except TimeoutError:
                    break
                found = ready()
        return found

    def _chat_for(self, state: _BotState, chat_id: Any) -> Json:
        if not isinstance(chat_id, int):
            raise EmulatorError("Bad Request: chat not found")
        if (state.user["id"], chat_id) in self._blocked:
            raise EmulatorError("Forbidden: bot was blocked by the user")
        if (state.user["id"], chat_id) in self._outside:
            raise EmulatorError("Forbidden: bot is not a member of the channel chat")
        if chat_id in self._channels:
            return self._channels[chat_id]
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        return {"id": chat_id, "type": "supergroup", "title": "Group"}

    def _message(self, state: _BotState, p: Json, **content: Any) -> Json:
        chat = self._chat_for(state, p.get("chat_id"))
        msg: Json = {"message_id": self.next_message_id(chat["id"]),
                     "date": int(self.clock()), "chat": chat,
                     "from": {k: state.user[k] for k in ("id", "is_bot", "first_name",
                                                         "username")}}
        msg.update({k: v for k, v in content.items() if v is not None})
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        return msg

    async def _m_sendMessage(self, state: _BotState, p: Json) -> Json:
        text = p.get("text")
        if not text:
            raise EmulatorError("Bad Request: message text is empty")
        if len(text) > 4096:
            raise EmulatorError("Bad Request: message is too long")
        return self._message(state, p, text=text)

    async def _m_sendPhoto(self, state: _BotState, p: Json) -> Json:
        caption = p.get("caption")
        if caption and len(caption) > 1024:
            raise EmulatorError("Bad Request: message caption is too long")
        photo = [{"file_id": f"photo{self.next_message_id(0)}", "file_unique_id": "u",
                  "width": 800, "height": 600,
                  "file_size": (p.get("photo") or {}).get("size", 0)
                  if isinstance(p.get("photo"), dict) else 0}]
        return self._message(state, p, photo=photo, caption=caption)

    async def _m_sendDocument(self, state: _BotState, p: Json) -> Json:
        doc = p.get("document")
        info = doc if isinstance(doc, dict) else {"file_name": None, "size": 0}
        return self._message(state, p, caption=p.get("caption"), document={
            "file_id": f"doc{self.next_message_id(0)}", "file_unique_id": "d",
            "file_name": info.get("file_name"), "file_size": info.get("size")})

    async def _m_sendInvoice(self, state: _BotState, p: Json) -> Json:
        prices = p.get("prices") or []
        return self._message(state, p, invoice={
            "title": p.get("title"), "description": p.get("description"),
            "start_parameter": p.get("start_parameter") or "", "currency": p.get("currency"),
            "total_amount": sum(int(x["amount"]) for x in prices)})

    async def _m_sendChatAction(self, state: _BotState, p: Json) -> bool:
        self._chat_for(state, p.get("chat_id"))
        return True

    async def _m_editMessageText(self, state: _BotState, p: Json) -> Json | bool:
        if p.get("inline_message_id"):
            return True
        msg = self._message(state, p, text=p.get("text"))
        msg["message_id"] = p.get("message_id")
        msg["edit_date"] = int(self.clock())
        return msg

    async def _m_editMessageReplyMarkup(self, state: _BotState, p: Json) -> Json | bool:
        if p.get("inline_message_id"):
            return True
        msg = self._message(state, p)
        msg["message_id"] = p.get("message_id")
        return msg

    async def _m_deleteMessage(self, state: _BotState, p: Json) -> bool:
        return True

    async def _m_answerCallbackQuery(self, state: _BotState, p: Json) -> bool:
        return True

    async def _m_answerInlineQuery(self, state: _BotState, p: Json) -> bool:
        return True

    async def _m_answerPreCheckoutQuery(self, state: _BotState, p: Json) -> bool:
        ok = p.get("ok") in (True, "true", "True")
        future = self._pending_checkouts.pop(str(p.get("pre_checkout_query_id")), None)
        if future is not None and not future.done():
            future.set_result(ok)
        return True

    async def _m_setMyCommands(self, state: _BotState, p: Json) -> bool:
        state.commands = list(p.get("commands") or [])
        return True

    async def _m_getMyCommands(self, state: _BotState, p: Json) -> list[Json]:
        return state.commands

    async def _m_deleteMyCommands(self, state: _BotState, p: Json) -> bool:
        state.commands = []
        return True


class SimUser:
    """A simulated person; each action queues the update Telegram would send."""

    def __init__(self, emu: TelegramEmulator, token: str, info: Json):
        self.emu = emu
        self.token = token
        self.info = info

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def chat(self) -> Json:
        return {"id": self.id, "type": "private", "first_name": self.info["first_name"]}

    def _message(self, chat: Json | None, **content: Any) -> Json:
        chat = chat or self.chat
        msg: Json = {"message_id": self.emu.next_message_id(chat["id"]),
                     "date": int(self.emu.clock()), "chat": chat, "from": self.info}
        msg.update(content)
        return msg

    def send(self, text: str, *, chat: Json | None = None) -> int:
        """A text message (commands get their ``bot_command`` entity, as Telegram sends)."""
        content: Json = {"text": text}
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self.emu.inject(self.token, "message", self._message(chat, **content))

    def command(self, name: str, args: str | None = None) -> int:
        return self.send(f"/{name.lstrip('/')}" + (f" {args}" if args else ""))

    def start(self, payload: str | None = None) -> int:
        """``/start``, with a deep-link payload when the person came through a link."""
        return self.command("start", payload)

    def send_photo(self, caption: str | None = None) -> int:
        content: Json = {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 10,
                                    "height": 10}]}
        if caption is not None:
            content["caption"] = caption
        return self.emu.inject(self.token, "message", self._message(None, **content))

    def edit(self, message_id: int, text: str) -> int:
        msg = self._message(None, text=text)
        msg["message_id"] = message_id
        msg["edit_date"] = int(self.emu.clock())
        return self.emu.inject(self.token, "edited_message", msg)

    def press(self, message: Json, data: str) -> int:
        """Press an inline button with ``data`` under a message the bot sent."""
        return self.emu.inject(self.token, "callback_query", {
            "id": str(next(self.emu._query_ids)), "from": self.info, "message": message,
            "chat_instance": f"ci{self.id}", "data": data})

    def inline(self, query: str) -> int:
        return self.emu.inject(self.token, "inline_query", {
            "id": str(next(self.emu._query_ids)), "from": self.info, "query": query,
            "offset": "", "chat_type": "sender"})

    def pre_checkout(self, currency: str, total_amount: int, payload: str) -> tuple[int, str]:
        query_id = str(next(self.emu._query_ids))
        uid = self.emu.inject(self.token, "pre_checkout_query", {
            "id": query_id, "from": self.info, "currency": currency,
            "total_amount": total_amount, "invoice_payload": payload})
        return uid, query_id

    def paid(self, currency: str, total_amount: int, payload: str,
             charge_id: str | None = None) -> int:
        """The ``successful_payment`` message Telegram sends after a payment."""
        charge = charge_id or f"charge-{self.id}-{next(self.emu._query_ids)}"
        return self.emu.inject(self.token, "message", self._message(None, successful_payment={
            "currency": currency, "total_amount": total_amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge, "provider_payment_charge_id": f"p-{charge}"}))

    async def pay(self, currency: str, total_amount: int, payload: str,
                  timeout: float = 10.0) -> bool:
        """The whole payment: pre-checkout, the bot's answer, then the payment message
        when the bot said ok. Returns whether the bot accepted."""
        loop = asyncio.get_running_loop()
        _, query_id = self.pre_checkout(currency, total_amount, payload)
        future: asyncio.Future[bool] = loop.create_future()
        self.emu._pending_checkouts[query_id] = future
        ok = await asyncio.wait_for(future, timeout)
        if ok:
            self.paid(currency, total_amount, payload)
        return ok

    def _membership(self, old: str, new: str) -> int:
        bot = self.emu.bot_user(self.token)

        def member(status: str) -> Json:
            info: Json = {"status": status, "user": bot}
            if status == "kicked":
                info["until_date"] = 0
            return info

        return self.emu.inject(self.token, "my_chat_member", {
            "chat": self.chat, "from": self.info, "date": int(self.emu.clock()),
            "old_chat_member": member(old), "new_chat_member": member(new)})

    def block(self) -> int:
        self.emu._blocked.add((self.emu.bot_user(self.token)["id"], self.id))
        return self._membership("member", "kicked")

    def unblock(self) -> int:
        self.emu._blocked.discard((self.emu.bot_user(self.token)["id"], self.id))
        return self._membership("kicked", "member")

    def received(self) -> list[Json]:
        """Messages the bot sent to this person's private chat."""
        return self.emu.messages_to(self.id, self.token)


class MemorySession(BaseSession):
    """A Bot API session answered in memory, for unit tests and benchmarks without
    HTTP: ``sendMessage`` returns a message in a private chat, every other method
    ``True``. For the real protocol use :class:`TelegramEmulator`."""

    def __init__(self) -> None:
        super().__init__()
        self._message_ids = itertools.count(1)

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        if method.__api_method__ == "sendMessage":
            from aiogram.types import Chat, Message

            return Message(message_id=next(self._message_ids), date=datetime.now(UTC),
                           chat=Chat(id=int(method.chat_id), type="private"),
                           text=method.text)
        return True

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        pass


class WireSession(AiohttpSession):
    """A Bot API session that does everything aiogram's HTTP session does for a request
    except the network: it builds and encodes the request body as
    :class:`~aiogram.client.session.aiohttp.AiohttpSession` sends it, and turns a JSON
    reply into the method's result through ``check_response``, as it does with
    Telegram's answer. ``sendMessage`` is answered with the message as Telegram would
    return it, every other method with ``true``. For benchmarks that should cost a
    bot's requests what they cost against Telegram, minus the round trip."""

    def __init__(self) -> None:
        super().__init__()
        self._message_ids = itertools.count(1)

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        self.api.api_url(token=bot.token, method=method.__api_method__)
        self.build_form_data(bot=bot, method=method)()  # the encoded body
        result: Any = True
        if method.__api_method__ == "sendMessage":
            result = {"message_id": next(self._message_ids), "date": int(time.time()),
                      "chat": {"id": int(method.chat_id), "type": "private",
                               "first_name": "User"},
                      "from": {"id": bot.id, "is_bot": True, "first_name": "Bot"},
                      "text": method.text}
        content = self.json_dumps({"ok": True, "result": result})
        return self.check_response(bot=bot, method=method, status_code=200,
                                   content=content).result
