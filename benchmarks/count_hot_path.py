"""Machine instructions per update on the hot path, for valgrind's callgrind: wall-clock
comparisons on a busy machine move by several percent, instruction counts do not.

Feeds ``--updates`` message updates (after 600 of warm-up) through one dispatcher with
the wire session. Each block of 500 is driven from inside a ctypes callback, so that
callgrind can count only those calls by collecting inside ``closure_fcn``, the C
function of ctypes that runs a callback::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --separate-threads=yes \\
        --toggle-collect=closure_fcn --cache-sim=yes --LL=2097152,16,64 \\
        --callgrind-out-file=out.analytics python benchmarks/count_hot_path.py analytics
    callgrind_annotate out.analytics-01 | grep "PROGRAM TOTALS"

and divide the totals by ``--updates``. Nothing else in the process calls Python through
ctypes, so nothing else is counted: with ``--updates 0`` the totals are empty. (Counting
inside ``map_next``, as this script once did, also counted every ``map()`` the libraries
iterate while the dispatcher and the plugin are set up: 10,500 instructions an update at
1,000 updates with the minimal capture, 12,800 with analytics.) With string hashing
randomised, where keys fall in dicts changes from run to run and moves the count by up to
about 5,000 an update; with ``PYTHONHASHSEED=0`` two runs agreed to within 1,000 on one
machine and came out 3,800 apart on another. ``--separate-threads=yes`` writes
one file per thread, and ``-01`` is the main thread's. Before counting, the script also
waits until the writer has prepared the database and stored the warm-up updates.

The setups (first argument): ``bare``, no middleware; ``empty``, an outer middleware
that only calls the handler; ``hooks``, the benchmark's hooks-only middlewares;
``hooks-objects``, the same middlewares written as ``BaseMiddleware`` and
``BaseRequestMiddleware`` objects; ``minimal``, the least a capture on these hooks can
do (``bench_hot_path.minimal_capture``); ``analytics``, analytics set up. The writer's
queue is emptied between blocks of 500 without storing anything, so only the bot's own
work is counted. Run without valgrind it only checks that every update completes without
waiting on the event loop, which counting this way needs.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods.base import Response
from aiogram.types import Message, Update
from bench_hot_path import (
    HOOKED,
    MINIMAL_QUEUE,
    SESSIONS,
    bench_analytics,
    dispatcher,
    empty_middleware,
    hooks_only,
    hooks_only_requests,
    make_updates,
    minimal_capture,
    minimal_requests,
)


class HooksObject(BaseMiddleware):
    """``hooks_only`` as aiogram's documentation writes middlewares: an object. The body
    is ``hooks_only``'s, repeated rather than called, so that the two setups differ only
    in how aiogram calls the middleware: a call to ``hooks_only`` from here would add a
    layer of its own to what is counted."""

    async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
        data["analytics"] = context = object()
        token = HOOKED.set(context)
        try:
            return await handler(event, data)
        finally:
            HOOKED.reset(token)


class HooksObjectRequests(BaseRequestMiddleware):
    """``hooks_only_requests`` as an object."""

    async def __call__(self, make_request: Any, bot: Any, method: Any) -> Any:
        HOOKED.get()
        return await make_request(bot, method)


#: A C callback without arguments or result: callgrind collects inside ``closure_fcn``.
CALLBACK = ctypes.CFUNCTYPE(None)


def counted(drive: Any, block: list[Any]) -> None:
    """``drive`` each item of ``block`` (here, an update) from inside a ctypes callback.
    ctypes prints and drops what a callback raises, so the error is carried out and
    raised here."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for item in block:
                drive(item)
        except BaseException as error:
            errors.append(error)

    CALLBACK(run)()
    if errors:
        raise errors[0]


PINNED = [Response[Message], Response[bool]]  # as in bench_hot_path: no rebuilds
WARM_UP = 600


async def main(setup: str, n: int) -> None:
    bot = Bot("42:BENCH", session=SESSIONS["wire"]())
    [updates] = make_updates(WARM_UP + n, bot)
    dp = dispatcher()
    analytics = work = None
    if setup == "empty":
        dp.update.outer_middleware(empty_middleware)
    elif setup == "hooks":
        dp.update.outer_middleware(hooks_only)
        bot.session.middleware(hooks_only_requests)
    elif setup == "hooks-objects":
        dp.update.outer_middleware(HooksObject())
        bot.session.middleware(HooksObjectRequests())
    elif setup == "minimal":
        dp.update.outer_middleware(minimal_capture)
        bot.session.middleware(minimal_requests)
    elif setup == "analytics":
        work = Path(tempfile.mkdtemp(prefix="count-hot-"))
        analytics = bench_analytics(work, flush_at=10 * n + 1000, queue_size=10 * n + 1000,
                                    flush_interval=3600)
        analytics.setup(dp)
        await analytics.start()
        analytics.instrument(bot)

    def drive(update: Update) -> None:
        coroutine = dp.feed_update(bot, update)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        coroutine.close()
        raise RuntimeError("an update waited on the event loop: it cannot be counted")

    def empty_queue() -> None:
        MINIMAL_QUEUE.clear()
        if analytics is not None:
            analytics.writer._buf.clear()  # not stored: only the hot path is counted

    for update in updates[:WARM_UP]:
        await dp.feed_update(bot, update)
    if analytics is not None:
        # The writer prepares the database (migrations, enrichers) and stores the
        # warm-up on its own thread: done before counting, so that it cannot slow the
        # hot path down while it is counted.
        await analytics.flush()
    empty_queue()
    rest: list[Any] = updates[WARM_UP:]
    for start in range(0, n, 500):
        counted(drive, rest[start:start + 500])
        empty_queue()
    print(f"{setup}: {n:,} updates fed")
    if work is not None:
        shutil.rmtree(work)
    os._exit(0)  # skip interpreter teardown: nothing after this is of interest


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("setup", choices=["bare", "empty", "hooks", "hooks-objects", "minimal",
                                      "analytics"])
    p.add_argument("--updates", type=int, default=1000)
    a = p.parse_args()
    asyncio.run(main(a.setup, a.updates))
