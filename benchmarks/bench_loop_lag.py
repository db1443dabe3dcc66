"""The bot's event loop while the writer works: how much later than asked the loop wakes
up, with the writer idle and while its thread reads, enriches and stores a backlog.

    python benchmarks/bench_loop_lag.py [--events 10000] [--rounds 6] [--period-ms 2]
                                        [--switch-interval-ms 1.0] [--compare]
                                        [--helper-process auto|true|false]

A probe on the event loop sleeps ``--period-ms`` again and again and records how much
later than asked each sleep ends: what an update or an answer arriving meanwhile waits
before the bot starts on it. Each round measures one second with the writer idle, then
puts ``--events`` captured updates on its queue at once (as a bot under load would over a
few seconds) and measures until the writer has stored them all.

The writer's thread runs Python code for most of a batch. While it does, the loop, once
woken by the operating system, waits for the interpreter lock until the writer's thread
lets go of it: CPython asks a thread to let go after the switch interval, 5 ms unless the
process set another. The writer keeps the interval at ``writer.switch_interval_ms``
while it runs. ``--switch-interval-ms`` sets that (``none``: the interpreter's own is
left alone); ``--compare`` runs each round twice, with the setting given and with
``none``, in turns.

Garbage collections that took more than 2 ms during the busy phases are listed with the
thread that ran them: a collection stops every thread, and a full one takes as long as
everything the process holds takes to walk, here the prepared updates too.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_gc import Collections
from bench_pipeline import captured, interval_ms

from bot_analytics import Analytics
from bot_analytics.config import parse_settings
from bot_analytics.events import Captured


async def probe(stop: asyncio.Event, period: float, lags: list[float]) -> None:
    """Sleep ``period`` until ``stop`` is set; note how late each sleep ended."""
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - t - period)


async def measure(work: Any, period: float) -> tuple[list[float], float]:
    """The loop's lateness while ``work()`` runs, and how long it ran."""
    stop, lags = asyncio.Event(), list[float]()
    task = asyncio.create_task(probe(stop, period, lags))
    start = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return lags, elapsed


def percentile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000, method="inclusive")[round(q * 1000) - 1]


def describe(lags: list[float]) -> str:
    ms = [x * 1000 for x in lags]
    late = sum(x > 2.0 for x in ms) / len(ms)
    return (f"median {percentile(ms, 0.5):6.3f}  p90 {percentile(ms, 0.9):6.3f}  "
            f"p99 {percentile(ms, 0.99):6.3f}  max {max(ms):7.3f} ms; "
            f"{late:6.1%} later than 2 ms ({len(ms):,} wake-ups)")


async def one(records: list[Captured], ms: float | None, period: float, helper: Any,
              gcs: Collections) -> tuple[list[float], list[float], float]:
    """One round with ``writer.switch_interval_ms`` = ``ms``: the idle and busy lags and
    the busy phase's events per second."""
    work = Path(tempfile.mkdtemp(prefix="bench-lag-"))
    analytics = Analytics(parse_settings({
        "database": {"url": f"sqlite:///{work / 'a.sqlite3'}", "auto_migrate": True},
        "writer": {"spool_path": str(work / "spool"), "queue_size": max(len(records), 10_000),
                   "switch_interval_ms": ms},
        "sentiment": {"helper_process": helper}}))
    await analytics.start()
    assert await analytics.flush(60)  # the schema is in place

    async def idle() -> None:
        await asyncio.sleep(1.0)

    async def busy() -> None:
        for record in records:
            analytics.writer.put(record)
        assert await analytics.flush(600)

    idle_lags, _ = await measure(idle, period)
    gcs.recording = True
    busy_lags, elapsed = await measure(busy, period)
    gcs.recording = False
    written = analytics.health()["written"]
    await analytics.close()
    shutil.rmtree(work, ignore_errors=True)
    if written != len(records):
        raise SystemExit(f"the writer stored {written:,} of {len(records):,} events")
    return idle_lags, busy_lags, len(records) / elapsed


async def run(events: int, rounds: int, period: float, ms: float | None, compare: bool,
              helper: Any) -> None:
    records = captured(events)
    settings = [ms, None] if compare and ms is not None else [ms]
    gcs = Collections()
    name = {s: "interpreter's own" if s is None else f"{s:g} ms" for s in settings}
    found: dict[float | None, tuple[list[float], list[float], list[float]]] = {
        s: ([], [], []) for s in settings}
    print(f"{events:,} events a busy phase, {rounds} rounds; the probe sleeps "
          f"{period * 1000:g} ms at a time; switch interval "
          + " and ".join(name[s] for s in settings)
          + f" (the interpreter's own: {sys.getswitchinterval() * 1000:g} ms)")
    for r in range(rounds):
        for s in (settings if r % 2 == 0 else settings[::-1]):
            idle, busy, rate = await one(records, s, period, helper, gcs)
            kept = found[s]
            kept[0].extend(idle)
            kept[1].extend(busy)
            kept[2].append(rate)
            print(f"round {r + 1}, {name[s]:>17}: busy {describe(busy)}; "
                  f"{rate:,.0f} events/s", flush=True)
    for s in settings:
        idle, busy, rates = found[s]
        print(f"switch interval {name[s]}:")
        print(f"  writer idle: {describe(idle)}")
        print(f"  writer busy: {describe(busy)}")
        print(f"  writer busy: {min(rates):,.0f} to {max(rates):,.0f} events/s stored")
    long = [(g, t * 1000, who) for g, t, who in gcs.seen if t > 0.002]
    if long:
        listed = ", ".join(f"gen {g} {t:.0f} ms ({who})" for g, t, who in long)
        print(f"collections over 2 ms while busy: {listed}")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000,
                   help="updates put on the queue at once (the default queue holds 10,000)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--period-ms", type=float, default=2.0,
                   help="how long the probe sleeps each time")
    p.add_argument("--switch-interval-ms", type=interval_ms, default=1.0,
                   help="writer.switch_interval_ms; 'none' leaves the interpreter's alone")
    p.add_argument("--compare", action="store_true",
                   help="also run each round with the interpreter's own switch interval")
    p.add_argument("--helper-process", choices=["auto", "true", "false"], default="auto",
                   help="sentiment.helper_process")
    a = p.parse_args()
    ms = a.switch_interval_ms
    if a.events < 1 or a.rounds < 1 or a.period_ms <= 0:
        p.error("--events and --rounds must be at least 1 and --period-ms above 0")
    helper = a.helper_process if a.helper_process == "auto" else a.helper_process == "true"
    asyncio.run(run(a.events, a.rounds, a.period_ms / 1000, ms, a.compare, helper))


if __name__ == "__main__":
    main()
