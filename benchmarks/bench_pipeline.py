"""Pipeline throughput: captured updates read, enriched (intent rules, VADER sentiment,
redaction) and persisted to SQLite per second, sustained over 200,000 events; and the
process's peak memory. Target: 10,000 events per second or more.

    python benchmarks/bench_pipeline.py [--events 200000] [--database-url URL]
                                        [--helper-process auto|true|false]
                                        [--switch-interval-ms 1.0|none]

The captured records (with their updates) are built first; then a producer on the event
loop queues them as the middleware would, never more than the queue holds, and the
writer's task and thread do the rest. The clock runs from the first event queued to the
last one committed. ``--helper-process`` sets ``sentiment.helper_process`` (``auto``, the
default, scores VADER in a helper process on a machine with two or more CPUs).
``--switch-interval-ms`` sets ``writer.switch_interval_ms`` (``none``: the interpreter's
own switch interval is left alone). It also prints the garbage collections of each
generation while the clock runs, in any thread, and the time they took: the 200,000
prepared records are part of what a full collection walks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from aiogram.types import Update
from bench_gc import Collections

from bot_analytics import Analytics
from bot_analytics.config import parse_settings
from bot_analytics.events import Captured

SENTENCES = [
    "where is my order", "I love this shop, thank you!", "this is terrible, it arrived broken",
    "how much is premium?", "can I talk to a human please", "my email is jo@example.com",
    "call me on +44 20 7946 0958", "refund please", "hello", "what are your opening hours",
    "the delivery was late again and nobody answers", "great service, very fast",
    "do you ship to Canada?", "/start promo", "/help", "I want to cancel my subscription",
]


#: The intent rules of the benchmark's bot (config.yaml's ``intents.rules``).
RULES = {"escalate": {"keywords": ["human", "agent"]},
         "refund": {"keywords": ["refund", "cancel"]},
         "delivery": {"keywords": ["order", "delivery", "ship"]},
         "pricing": {"keywords": ["how much", "premium"]}}


def pool(size: int) -> list[Update]:
    rng = random.Random(5)
    out = []
    for i in range(size):
        uid = rng.randint(1, 20_000)
        text = " ".join(rng.choices(SENTENCES, k=rng.randint(1, 3)))
        out.append(Update.model_validate({"update_id": i, "message": {
            "message_id": 1, "date": 1, "text": text,
            "chat": {"id": uid, "type": "private", "first_name": "U"},
            "from": {"id": uid, "is_bot": False, "first_name": "U", "language_code": "en"}}}))
    return out


def captured(events: int) -> list[Captured]:
    """What the capture records for ``events`` handled updates, each with its own id."""
    base = pool(2000)
    t_receive = time.time()
    return [Captured(base[i % len(base)].model_copy(update={"update_id": i + 1}), 42,
                     "bench", t_receive + i * 0.01, True, None, 1.0, "Thanks, noted.",
                     0.5, 1, False, None) for i in range(events)]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def helper_peak_mib(analytics: Analytics) -> float | None:
    """Peak resident memory of the sentiment helper process (Linux), if one runs."""
    proc = getattr(analytics.enricher.analyzer, "proc", None)
    if proc is None:
        return None
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines()
                 if line.startswith("VmHWM:")), None)


async def run(events: int, url: str | None, flush_at: int = 500, max_batch: int = 2000,
              helper: bool | str = "auto", switch_ms: float | None = 1.0) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    url = url or f"sqlite:///{work / 'analytics.sqlite3'}"
    analytics = Analytics(parse_settings({
        "database": {"url": url, "auto_migrate": True},
        "writer": {"spool_path": str(work / "spool"), "flush_at": flush_at,
                   "max_batch": max_batch, "switch_interval_ms": switch_ms},
        "sentiment": {"helper_process": helper}, "intents": {"rules": RULES}}))
    await analytics.start()
    await analytics.flush(60)
    # Built before the clock starts: making updates is the bot's (aiogram's) work.
    records = captured(events)
    before = rss_mib()
    writer = analytics.writer
    collections = Collections()
    collections.recording = True
    start = time.perf_counter()
    for i, record in enumerate(records):
        while len(writer._buf) >= writer.maxsize - 1:
            await asyncio.sleep(0.001)  # the queue is full: wait for the writer
        writer.put(record)
        if i % 200 == 0:
            await asyncio.sleep(0)  # a bot's loop waits on the network between updates
    assert await analytics.flush(600)
    elapsed = time.perf_counter() - start
    collections.stop()
    counts, seconds = collections.by_generation()
    h = analytics.health()
    helper_mib = helper_peak_mib(analytics)
    await analytics.close()
    print(f"events: {events:,}; written {h['written']:,}, dropped {h['dropped']}, "
          f"spooled {h['spooled']}, failures {h['enrichment_failures'] + h['capture_failures']}")
    print(f"database: {url.split('?')[0]}; flush_at {flush_at}, max_batch {max_batch}; "
          "switch interval while the writer runs: "
          + ("the interpreter's own" if switch_ms is None else f"{switch_ms:g} ms"))
    helper_state = h.get("sentiment_helper")
    print("sentiment: " + ("in the writer's thread" if helper_state is None else
                           f"in a helper process (started {helper_state['started']}, "
                           f"failures {helper_state['failures']}); the writer's thread "
                           f"spent {helper_state['sending_s']:.2f} s handing it texts and "
                           f"{helper_state['answers_s']:.2f} s getting its answers"))
    gcs = ", ".join(f"{name} {n:,} ({took:.2f} s)" for name, n, took in
                    zip(("young", "middle", "full"), counts, seconds, strict=True))
    print(f"elapsed: {elapsed:.1f} s; garbage collections meanwhile: {gcs}")
    print(f"throughput: {events / elapsed:,.0f} events/s   target: 10,000 or more")
    print(f"peak memory: {rss_mib():.0f} MiB resident (was {before:.0f} MiB before the run)"
          + ("" if helper_mib is None else f"; the helper process: {helper_mib:.0f} MiB"))
    shutil.rmtree(work, ignore_errors=True)  # the SQLite file and the spool


def interval_ms(text: str) -> float | None:
    """``--switch-interval-ms``: milliseconds above 0 and at most 1000, or 'none'."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of milliseconds above 0 and at most 1000, or 'none'")
    return value


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--flush-at", type=int, default=500, help="writer.flush_at")
    p.add_argument("--max-batch", type=int, default=2000, help="writer.max_batch")
    p.add_argument("--helper-process", choices=["auto", "true", "false"], default="auto",
                   help="sentiment.helper_process")
    p.add_argument("--switch-interval-ms", type=interval_ms, default=1.0,
                   help="writer.switch_interval_ms; 'none' leaves the interpreter's alone")
    a = p.parse_args()
    helper = a.helper_process if a.helper_process == "auto" else a.helper_process == "true"
    asyncio.run(run(a.events, a.database_url, a.flush_at, a.max_batch, helper,
                    a.switch_interval_ms))


if __name__ == "__main__":
    main()
