"""Garbage collections a bot runs with and without analytics: message updates parsed one
by one from their JSON form, as a polling or webhook bot gets them, through a bare
dispatcher and through one with analytics set up, its writer storing as it goes.

    python benchmarks/bench_gc.py [--updates 60000] [--every 20]

CPython collects its youngest generation when the objects made since the last
collection outnumber those freed by 700, the next one every ten of those, and all of
them when the objects that survived into the oldest generation reach a quarter of what
it held: a full collection walks everything the process holds and stops every thread
meanwhile. A bot whose updates are freed when it is done with them hardly collects;
objects it keeps longer (such as a queue of updates waiting for a writer) survive the
younger generations and make all three run. The script counts the collections of each
generation and the time spent in them while the updates are fed, and the time the
feeding took (the writer's work included: it runs in the same process). Every
``--every`` updates the loop sleeps 0.5 ms, as a bot waits on the network, and the
writer gets its turns.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.methods.base import Response
from aiogram.types import Message, Update
from bench_hot_path import PINNED, bench_analytics, dispatcher, raw_updates

from bot_analytics.emulator import WireSession


class Collections:
    """Every garbage collection while ``recording`` is set, in any thread: (generation,
    seconds, thread name)."""

    def __init__(self) -> None:
        self.recording = False
        self.seen: list[tuple[int, float, str]] = []
        self._started: dict[int, float] = {}
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        me = threading.get_ident()
        if phase == "start":
            self._started[me] = time.perf_counter()
            return
        took = time.perf_counter() - self._started.pop(me, time.perf_counter())
        if self.recording:
            self.seen.append((info["generation"], took, threading.current_thread().name))

    def by_generation(self) -> tuple[list[int], list[float]]:
        """How many collections of each generation, and the seconds they took."""
        count, seconds = [0, 0, 0], [0.0, 0.0, 0.0]
        for generation, took, _ in self.seen:
            count[generation] += 1
            seconds[generation] += took
        return count, seconds

    def stop(self) -> None:
        gc.callbacks.remove(self._note)


async def feed(with_analytics: bool, raws: list[dict[str, Any]], every: int) -> str:
    bot = Bot("42:BENCH", session=WireSession())
    dp = dispatcher()
    analytics = tmp = None
    if with_analytics:
        tmp = tempfile.TemporaryDirectory(prefix="bench-gc-")
        analytics = bench_analytics(Path(tmp.name))
        analytics.setup(dp)
        await analytics.start()
        analytics.instrument(bot)
        assert await analytics.flush(60)  # the schema is in place
    gc.collect()
    seen = Collections()
    seen.recording = True
    start = time.perf_counter()
    for i, raw in enumerate(raws):
        await dp.feed_update(bot, Update.model_validate(raw, context={"bot": bot}))
        if i % every == every - 1:
            await asyncio.sleep(0.0005)  # a bot waits on the network between updates
    elapsed = time.perf_counter() - start
    stored = ""
    if analytics is not None and tmp is not None:
        assert await analytics.flush(600)
        health = analytics.health()
        stored = f"; stored {health['written']:,}"
    seen.recording = False
    seen.stop()
    count, seconds = seen.by_generation()
    if analytics is not None and tmp is not None:
        await analytics.close()
        tmp.cleanup()
    gens = ", ".join(f"gen {g} {count[g]:,} ({seconds[g] * 1000:,.0f} ms)" for g in range(3))
    full = count[2]
    mean_full = f"; a full one {seconds[2] / full * 1000:.0f} ms on average" if full else ""
    return (f"{'with analytics' if with_analytics else 'bare':>14}: {elapsed:5.1f} s "
            f"feeding; collections {gens}; {sum(seconds) * 1000:,.0f} ms in all"
            f"{mean_full}{stored}")


async def run(n: int, every: int) -> None:
    # aiogram's answer models, kept alive: pydantic caches them only weakly, and a
    # rebuild after a collection would be counted as the bot's own work.
    PINNED.extend((Response[Message], Response[bool]))
    raws = raw_updates(n)
    print(f"{n:,} message updates parsed one by one; the loop sleeps 0.5 ms every {every}")
    for with_analytics in (False, True):
        print(await feed(with_analytics, raws, every), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--updates", type=int, default=60_000)
    p.add_argument("--every", type=int, default=20,
                   help="updates between the loop's 0.5 ms sleeps")
    a = p.parse_args()
    if a.updates < 1 or a.every < 1:
        p.error("--updates and --every must be at least 1")
    asyncio.run(run(a.updates, a.every))


if __name__ == "__main__":
    main()
