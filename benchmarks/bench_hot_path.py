"""Hot-path overhead: the same message updates, each answered by a handler, through a
bare aiogram dispatcher and through one with analytics set up, alternating in blocks in
one process with a session that does not go on the network. Prints the time ratio
(target: 1.03 or less).

    python benchmarks/bench_hot_path.py [--updates 20000] [--block 500] [--runs 10]
                                        [--control] [--hooks] [--minimal]
                                        [--session wire|memory] [--no-pin] [--parse]

The session (``--session``): ``wire``, the default, does for each request what aiogram's
HTTP session does except the round trip: it builds and encodes the request body and
reads Telegram's JSON answer into a Message (``bot_analytics.emulator.WireSession``).
``memory`` hands back a Message built directly, skipping that work
(``MemorySession``): the bare bot then does about half of what a real one does per
update.

aiogram reads every answer through ``Response[method.__returning__]``, a generic
pydantic model that pydantic caches only weakly: once a garbage collection frees
``Response[Message]``, the next answer builds it again, which takes about 4 ms. How many
of those rebuilds fall in one side's blocks depends on when each side's collections
happen, and one rebuild more or less in a block of 500 updates moves that block by 3%.
The benchmark keeps the classes it uses alive (``--no-pin`` leaves them to the cache)
and prints how many were built during the timed blocks.

With ``--parse`` each side parses every update from its JSON form inside the timed
blocks, as a polling or webhook bot does, instead of getting updates built before the
run. Built beforehand, the updates live through the whole run on both sides, so the
benchmark charges the capture for reading an update when its handler is done (in the
capture middleware, or ``UpdateContext.detach``) but cannot show what that saves:
without it, the updates waiting for the writer are what the garbage collector keeps
walking (``benchmarks/bench_gc.py``).

The handler has no filter: aiogram runs synchronous filters such as ``F.text`` in a
worker thread, and the timing of that hand-off would swamp the few microseconds
measured here. The analytics writer drains its queue between timed blocks, so the
ratio is what the bot's own event loop pays per update.

A single comparison of 20,000 updates moves by several percent from one run to the
next even when both sides run the same code: where the bots, dispatchers and updates
land in memory differs between runs and does not average out within one. So each run
builds everything afresh (the two sides' updates created in turns, neither always
first), the comparison is repeated ``--runs`` times, and the mean ratio is printed
with its 95% confidence interval. Each run also gives the median, over its pairs of
blocks, of the second dispatcher's time over the bare one's: a block slowed down by
something else on the machine moves the ratio of the totals but hardly the median. The
target is the ratio of the totals. ``--control`` also runs each comparison once with
analytics left out of the second dispatcher: what the benchmark reports when nothing
differs. ``--hooks`` runs it once more with only the hooks the design asks for on the
second dispatcher and nothing behind them (an outer middleware that puts a per-update
object under ``analytics`` and sets a contextvar, and a request middleware that reads
it, both plain functions): the least any capture built on these hooks costs.
``--minimal`` runs it once more with :func:`minimal_capture`: the least a capture on
these hooks can do, with none of the plugin's checks. Then the capture middleware is
called on its own (a handler that does nothing) next to an empty middleware, on each
update right after a bare dispatcher has handled it: the plugin's own work per update
without aiogram around it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from contextvars import ContextVar
from pathlib import Path
from time import perf_counter
from typing import Any

import pydantic._internal._generics as pydantic_generics
from aiogram import Bot, Dispatcher
from aiogram.methods.base import Response
from aiogram.types import Message, Update

from bot_analytics import Analytics
from bot_analytics.capture.middleware import capture_middleware
from bot_analytics.config import parse_settings
from bot_analytics.emulator import MemorySession, WireSession

WORDS = ["hello", "where", "is", "my", "order", "great", "service", "refund", "please",
         "thanks", "price", "premium", "human", "late", "delivery"]


def raw_updates(n: int) -> list[dict[str, Any]]:
    """``n`` message updates as Telegram sends them (parsed JSON)."""
    rng = random.Random(1)
    out = []
    for i in range(n):
        uid = rng.randint(1, 5000)
        text = " ".join(rng.choices(WORDS, k=rng.randint(2, 12)))
        out.append({"update_id": i + 1, "message": {
            "message_id": i + 1, "date": 1, "text": text,
            "chat": {"id": uid, "type": "private", "first_name": "U"},
            "from": {"id": uid, "is_bot": False, "first_name": "U", "language_code": "en"}}})
    return out


def make_updates(n: int, *bots: Bot) -> list[list[Update]]:
    """The same ``n`` updates for each bot, created in turns so that no bot's updates
    are all older in memory than another's."""
    out: list[list[Update]] = [[] for _ in bots]
    for raw in raw_updates(n):
        for updates, bot in zip(out, bots, strict=True):
            updates.append(Update.model_validate(raw, context={"bot": bot}))
    return out


def dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def answer(message: Message) -> None:
        await message.answer("Thanks, we got your message.")

    return dp


SESSIONS = {"wire": WireSession, "memory": MemorySession}


class GenericBuilds:
    """Counts the generic models pydantic builds (``Response[Message]`` after its cached
    class was collected) while ``counting`` is set."""

    def __init__(self) -> None:
        self.count = 0
        self.counting = False
        self._build = pydantic_generics.create_generic_submodel

        def build(*args: Any, **kwargs: Any) -> Any:
            if self.counting:
                self.count += 1
            return self._build(*args, **kwargs)

        pydantic_generics.create_generic_submodel = build


BUILDS = GenericBuilds()
PINNED: list[type] = []  # generic models kept alive for the whole run


def bench_analytics(work: Path, **writer: Any) -> Analytics:
    """Analytics on a SQLite file in ``work``, with these writer settings."""
    return Analytics(parse_settings({
        "database": f"sqlite:///{work / 'a.sqlite3'}",
        "writer": {"spool_path": str(work / "spool"), **writer}}))


HOOKED: ContextVar[object | None] = ContextVar("bench_hooked", default=None)


async def hooks_only(handler: Any, event: Any, data: dict[str, Any]) -> Any:
    """The least a capture can do on ``dp.update`` under this design: a per-update
    object in the handler data under ``analytics`` and a contextvar naming it while the
    handler runs, so that a request middleware can tie requests to the update. A plain
    function, as the plugin's middlewares are: aiogram calls a function more cheaply than
    an object's ``__call__``."""
    data["analytics"] = context = object()
    token = HOOKED.set(context)
    try:
        return await handler(event, data)
    finally:
        HOOKED.reset(token)


async def hooks_only_requests(make_request: Any, bot: Any, method: Any) -> Any:
    """The least a request middleware can do: look up the update it belongs to."""
    HOOKED.get()
    return await make_request(bot, method)


class MinimalContext:
    """The context of :func:`minimal_capture`."""

    __slots__ = ("r_at", "r_chat", "r_method", "r_text", "t0", "t_end", "update")
    update: Any
    t0: float
    t_end: float | None
    r_method: str
    r_chat: Any
    r_text: Any
    r_at: float | None


MINIMAL_QUEUE: list[MinimalContext] = []


async def minimal_capture(handler: Any, event: Any, data: dict[str, Any]) -> Any:
    """The least a capture on these hooks can do, in one function: two clock readings,
    a context with the update, the contextvar, an append to a queue. No screening, bot
    identity, custom clock, queue bound, counters or surveys, and no error handling."""
    t0 = perf_counter()
    ctx = object.__new__(MinimalContext)
    ctx.update, ctx.t0, ctx.t_end, ctx.r_at = event, t0, None, None
    data["analytics"] = ctx
    token = HOOKED.set(ctx)
    try:
        result = await handler(event, data)
    finally:
        ctx.t_end = perf_counter()
        HOOKED.reset(token)
    MINIMAL_QUEUE.append(ctx)
    return result


async def minimal_requests(make_request: Any, bot: Any, method: Any) -> Any:
    """The request side of :func:`minimal_capture`: the first request's method name,
    chat, text and completion time."""
    ctx: Any = HOOKED.get()
    response = await make_request(bot, method)
    if ctx is not None and ctx.t_end is None and ctx.r_at is None:
        fields = method.__dict__
        ctx.r_method, ctx.r_chat, ctx.r_text = (
            method.__api_method__, fields.get("chat_id"), fields.get("text"))
        ctx.r_at = perf_counter()
    return response


async def compare(n: int, block: int, session: str, mode: str = "analytics",
                  parse: bool = False) -> tuple[float, float, float, str]:
    """Seconds per update through a bare dispatcher and through the second one, the
    median over the pairs of blocks of the second's time over the bare one's, and what
    analytics stored. The second dispatcher has analytics set up (``analytics``), is as
    bare as the first (``control``), has only :func:`hooks_only` and
    :func:`hooks_only_requests` (``hooks``), or :func:`minimal_capture` and
    :func:`minimal_requests` (``minimal``)."""
    # Each dispatcher has a bot of its own: the bare one's session has no middleware.
    bare_bot = Bot("42:BENCH", session=SESSIONS[session]())
    bot = Bot("42:BENCH", session=SESSIONS[session]())
    bare_updates: list[Any]
    updates: list[Any]
    if parse:  # each side parses the same dicts while it is timed
        bare_updates = updates = raw_updates(n)
    else:
        bare_updates, updates = make_updates(n, bare_bot, bot)
    bare = dispatcher()
    second = dispatcher()
    analytics = tmp = None
    if mode == "hooks":
        second.update.outer_middleware(hooks_only)
        bot.session.middleware(hooks_only_requests)
    if mode == "minimal":
        second.update.outer_middleware(minimal_capture)
        bot.session.middleware(minimal_requests)
    if mode == "analytics":
        tmp = tempfile.TemporaryDirectory(prefix="bench-hot-")
        work = Path(tmp.name)
        analytics = bench_analytics(work)
        analytics.setup(second)
        await analytics.start()
        analytics.instrument(bot)

    async def drain() -> None:  # the writer's work, outside the timing
        MINIMAL_QUEUE.clear()
        if analytics is not None:
            await analytics.flush(60)

    def as_update(u: Any, b: Bot) -> Update:
        return Update.model_validate(u, context={"bot": b}) if parse else u

    for v, u in zip(bare_updates[:block], updates[:block], strict=True):  # warm-up
        await bare.feed_update(bare_bot, as_update(v, bare_bot))
        await second.feed_update(bot, as_update(u, bot))
    await drain()

    async def timed(dp: Dispatcher, b: Bot, chunk: list[Any]) -> float:
        gc.collect()
        BUILDS.counting = True
        t = time.perf_counter()
        if parse:
            for raw in chunk:
                await dp.feed_update(b, Update.model_validate(raw, context={"bot": b}))
        else:
            for u in chunk:
                await dp.feed_update(b, u)
        t = time.perf_counter() - t
        BUILDS.counting = False
        return t

    t_bare = t_second = 0.0
    pairs: list[float] = []  # each pair of blocks: the second's time over the bare one's
    for start in range(0, n, block):
        chunk, bare_chunk = updates[start:start + block], bare_updates[start:start + block]
        if (start // block) % 2 == 0:  # alternate which goes first
            b = await timed(bare, bare_bot, bare_chunk)
            s = await timed(second, bot, chunk)
        else:
            s = await timed(second, bot, chunk)
            b = await timed(bare, bare_bot, bare_chunk)
        t_bare += b
        t_second += s
        pairs.append(s / b)
        await drain()
    stored = {"control": "control: no analytics", "hooks": "hooks only",
              "minimal": "minimal capture"}.get(mode, "")
    if analytics is not None and tmp is not None:
        await analytics.close(120)
        health = analytics.health()
        stored = f"written {health['written']:,}, dropped {health['dropped']}"
        tmp.cleanup()
    return t_bare / n, t_second / n, statistics.median(pairs), stored


def summary(ratios: list[float]) -> str:
    """Mean ratio with its 95% confidence interval (Student's t over the runs)."""
    from scipy.stats import t as student

    mean = statistics.fmean(ratios)
    if len(ratios) < 2:
        return f"{mean:.3f} (one run: no interval)"
    half = student.ppf(0.975, len(ratios) - 1) * statistics.stdev(ratios) / len(ratios) ** 0.5
    return (f"{mean:.3f}, 95% CI {mean - half:.3f} to {mean + half:.3f} "
            f"(median {statistics.median(ratios):.3f}, {len(ratios)} runs)")


async def empty_middleware(handler: Any, event: Any, data: dict[str, Any]) -> Any:
    return await handler(event, data)


async def middleware_alone(n: int) -> tuple[float, float]:
    """Seconds per call of an empty middleware and of the capture middleware, each called
    with a handler that does nothing, on each update right after a bare dispatcher has
    handled it: its objects are then as near the processor as a bot's update is when its
    handler returns, which is when the capture reads it and lets it go."""
    bot = Bot("42:BENCH", session=WireSession())
    other = Bot("42:BENCH", session=MemorySession())  # the capture's: it instruments it
    dp = dispatcher()
    tmp = tempfile.TemporaryDirectory(prefix="bench-hot-")
    work = Path(tmp.name)
    analytics = bench_analytics(work, queue_size=n + 1, flush_at=n + 1, flush_interval=3600)
    await analytics.start()
    capture = capture_middleware(analytics)

    async def nothing(event: Any, data: dict[str, Any]) -> None:
        return None

    totals = {"empty": 0.0, "capture": 0.0}
    middlewares = [("empty", empty_middleware), ("capture", capture)]
    for raw in raw_updates(n):
        update = Update.model_validate(raw, context={"bot": bot})
        await dp.feed_update(bot, update)
        middlewares.reverse()  # neither always right after the dispatcher
        for name, mw in middlewares:
            t = perf_counter()
            await mw(nothing, update, {"bot": other})
            totals[name] += perf_counter() - t
    analytics.writer._buf.clear()  # not stored: only the calls are measured
    await analytics.close(10)
    tmp.cleanup()
    return totals["empty"] / n, totals["capture"] / n


LABELS = {"analytics": "with analytics", "control": "control       ",
          "hooks": "hooks only    ", "minimal": "minimal       "}


async def run(n: int, block: int, runs: int, control: bool, hooks: bool, minimal: bool,
              session: str, pin: bool, parse: bool = False) -> None:
    print(f"{n:,} message updates through each dispatcher, alternating blocks of {block}; "
          f"{runs} runs, each with everything built afresh; {session} session; "
          f"aiogram's Response classes {'kept alive' if pin else 'left to pydantic'}; "
          + ("each update parsed while timed" if parse else "updates built before timing"))
    if pin:  # the two answers the session gives: a Message for sendMessage, else True
        PINNED.extend((Response[Message], Response[bool]))
    modes = ["analytics"] + ["control"] * control + ["hooks"] * hooks + ["minimal"] * minimal
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    medians: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(runs):
        for mode in modes:
            bare, second, median, stored = await compare(n, block, session, mode, parse)
            ratios[mode].append(second / bare)
            medians[mode].append(median)
            print(f"run {i + 1:2}: bare {bare * 1e6:6.1f} us/update, {LABELS[mode]} "
                  f"{second * 1e6:6.1f} us/update, ratio {second / bare:.3f}, median of "
                  f"block pairs {median:.3f} ({stored})", flush=True)
    for mode, what in (("control", "control ratio (both dispatchers bare)"),
                       ("minimal", "minimal-capture ratio (the least a capture on these "
                                   "hooks can do)"),
                       ("hooks", "hooks-only ratio (the middlewares with nothing behind "
                                 "them)")):
        if mode in ratios:
            print(f"{what}: {summary(ratios[mode])}; median of block pairs "
                  f"{summary(medians[mode])}")
    print(f"median of block pairs with analytics: {summary(medians['analytics'])}")
    print(f"hot-path ratio: {summary(ratios['analytics'])}   target: 1.03 or less")
    print(f"generic models built by pydantic during the timed blocks: {BUILDS.count}")
    empty, capture = await middleware_alone(n)
    print(f"middleware alone (each of {n:,} updates right after a bare dispatcher handled "
          f"it): empty {empty * 1e6:.2f} us/call, capture {capture * 1e6:.2f} us/call")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--updates", type=int, default=20_000)
    p.add_argument("--block", type=int, default=500)
    p.add_argument("--runs", type=int, default=10,
                   help="comparisons, each with fresh bots, dispatchers and updates")
    p.add_argument("--control", action="store_true",
                   help="also run each comparison with analytics left out (both sides bare)")
    p.add_argument("--hooks", action="store_true",
                   help="also run each comparison with only the hooks the capture needs "
                        "(the data key, the contextvar, a request middleware) and no work "
                        "behind them: the least any capture of this design costs")
    p.add_argument("--minimal", action="store_true",
                   help="also run each comparison with the least a capture on these hooks "
                        "can do (minimal_capture) in place of analytics")
    p.add_argument("--session", choices=sorted(SESSIONS), default="wire",
                   help="wire: requests encoded and answers decoded as over HTTP (default); "
                        "memory: answers handed back without that work")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="leave aiogram's Response classes to pydantic's weak cache, so "
                        "that they are rebuilt after collections")
    p.add_argument("--parse", action="store_true",
                   help="parse each update from its JSON form inside the timed blocks, as a "
                        "polling or webhook bot does, rather than building them all first")
    a = p.parse_args()
    if a.updates < a.block or a.block < 1 or a.runs < 1:
        p.error("--updates must be at least --block, and --block and --runs at least 1")
    asyncio.run(run(a.updates, a.block, a.runs, a.control, a.hooks, a.minimal, a.session,
                    a.pin, a.parse))


if __name__ == "__main__":
    main()
