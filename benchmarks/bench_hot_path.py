"""Hot-path overhead: the same message updates, each answered by a handler, through a
bare aiogram dispatcher and through one with analytics set up, alternating in blocks in
one process with an in-memory session. Prints the time ratio (target: 1.03 or less).

    python benchmarks/bench_hot_path.py [--updates 20000] [--block 500]

The handler has no filter: aiogram runs synchronous filters such as ``F.text`` in a
worker thread, and the timing of that hand-off would swamp the few microseconds
measured here. The analytics writer drains its queue between timed blocks, so the
ratio is what the bot's own event loop pays per update. The comparison runs three
times; each ratio and their median are printed. Then the capture middleware is called
on its own in a loop (a handler that does nothing, no dispatcher) next to an empty
middleware: the plugin's own work per update without aiogram around it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.types import Message, Update

from bot_analytics import Analytics
from bot_analytics.capture.middleware import CaptureMiddleware
from bot_analytics.config import parse_settings
from bot_analytics.emulator import MemorySession

WORDS = ["hello", "where", "is", "my", "order", "great", "service", "refund", "please",
         "thanks", "price", "premium", "human", "late", "delivery"]


def make_updates(n: int, bot: Bot) -> list[Update]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        uid = rng.randint(1, 5000)
        text = " ".join(rng.choices(WORDS, k=rng.randint(2, 12)))
        out.append(Update.model_validate({"update_id": i + 1, "message": {
            "message_id": i + 1, "date": 1, "text": text,
            "chat": {"id": uid, "type": "private", "first_name": "U"},
            "from": {"id": uid, "is_bot": False, "first_name": "U", "language_code": "en"}}},
            context={"bot": bot}))
    return out


def dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def answer(message: Message) -> None:
        await message.answer("Thanks, we got your message.")

    return dp


async def compare(n: int, block: int) -> tuple[float, float, dict[str, object]]:
    """Seconds per update (bare, with analytics) and the analytics health."""
    # Each dispatcher has a bot of its own: the bare one's session has no middleware.
    bare_bot = Bot("42:BENCH", session=MemorySession())
    bot = Bot("42:BENCH", session=MemorySession())
    bare_updates = make_updates(n, bare_bot)
    updates = make_updates(n, bot)
    bare = dispatcher()
    instrumented = dispatcher()
    work = Path(tempfile.mkdtemp(prefix="bench-hot-"))
    analytics = Analytics(parse_settings({
        "database": f"sqlite:///{work / 'a.sqlite3'}",
        "writer": {"spool_path": str(work / "spool")}}))
    analytics.setup(instrumented)
    await analytics.start()
    analytics.instrument(bot)

    for v, u in zip(bare_updates[:block], updates[:block], strict=True):  # warm-up
        await bare.feed_update(bare_bot, v)
        await instrumented.feed_update(bot, u)
    await analytics.flush(60)

    async def timed(dp: Dispatcher, b: Bot, chunk: list[Update]) -> float:
        gc.collect()
        t = time.perf_counter()
        for u in chunk:
            await dp.feed_update(b, u)
        return time.perf_counter() - t

    t_bare = t_an = 0.0
    for start in range(0, n, block):
        chunk, bare_chunk = updates[start:start + block], bare_updates[start:start + block]
        if (start // block) % 2 == 0:  # alternate which goes first
            t_bare += await timed(bare, bare_bot, bare_chunk)
            t_an += await timed(instrumented, bot, chunk)
        else:
            t_an += await timed(instrumented, bot, chunk)
            t_bare += await timed(bare, bare_bot, bare_chunk)
        await analytics.flush(60)  # outside the timing
    await analytics.close(120)
    return t_bare / n, t_an / n, analytics.health()


class EmptyMiddleware(BaseMiddleware):
    async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
        return await handler(event, data)


async def middleware_alone(n: int) -> tuple[float, float]:
    """Seconds per call of an empty middleware and of the capture middleware."""
    bot = Bot("42:BENCH", session=MemorySession())
    updates = make_updates(n, bot)
    work = Path(tempfile.mkdtemp(prefix="bench-hot-"))
    analytics = Analytics(parse_settings({
        "database": f"sqlite:///{work / 'a.sqlite3'}",
        "writer": {"spool_path": str(work / "spool"), "queue_size": n + 1,
                   "flush_at": n + 1, "flush_interval": 3600}}))
    capture, empty = CaptureMiddleware(analytics), EmptyMiddleware()

    async def nothing(event: Any, data: dict[str, Any]) -> None:
        return None

    best = {"empty": float("inf"), "capture": float("inf")}
    for _ in range(3):
        for name, mw in (("empty", empty), ("capture", capture)):
            gc.collect()
            t = time.perf_counter()
            for u in updates:
                await mw(nothing, u, {"bot": bot})
            best[name] = min(best[name], (time.perf_counter() - t) / n)
        analytics.writer._buf.clear()  # not stored: only the call is measured
    await analytics.close(10)
    return best["empty"], best["capture"]


async def run(n: int, block: int, repeats: int) -> None:
    print(f"{n:,} message updates through each dispatcher, alternating blocks of {block}")
    ratios = []
    for i in range(repeats):
        bare, an, health = await compare(n, block)
        ratios.append(an / bare)
        print(f"run {i + 1}: bare {bare * 1e6:6.1f} us/update, with analytics "
              f"{an * 1e6:6.1f} us/update, ratio {an / bare:.3f} "
              f"(written {health['written']:,}, dropped {health['dropped']})")
    print(f"hot-path ratio (median of {repeats}): {statistics.median(ratios):.3f}   "
          f"target: 1.03 or less")
    empty, capture = await middleware_alone(n)
    print(f"middleware alone (best of 3 loops over {n:,} updates): empty {empty * 1e6:.2f} "
          f"us/call, capture {capture * 1e6:.2f} us/call")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--updates", type=int, default=20_000)
    p.add_argument("--block", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    asyncio.run(run(a.updates, a.block, a.repeats))


if __name__ == "__main__":
    main()
