"""Machine instructions per event of the writer's own work, for valgrind's callgrind:
reading the captured updates, labelling intents, redacting, building the rows and
sessions, and storing them in SQLite, for the same records ``bench_pipeline.py`` feeds
(VADER is left out: it runs in a helper process of its own by default). Wall-clock
throughput moves by a fifth from run to run on a busy machine; instruction counts do not.

Each batch is prepared and stored from inside a ctypes callback, in this thread
(``count_hot_path.counted``), so that callgrind counts only that work when it collects
inside ``closure_fcn``::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --toggle-collect=closure_fcn \\
        --callgrind-out-file=out.writer python benchmarks/count_writer.py
    callgrind_annotate out.writer | grep "PROGRAM TOTALS"

and divide the total by ``--events``. Run without valgrind it prints how long the
batches took, which says little on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_pipeline import RULES, captured
from count_hot_path import counted

from bot_analytics import Analytics
from bot_analytics.config import parse_settings


async def main(n: int, batch: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="count-writer-"))
    analytics = Analytics(parse_settings({
        "database": {"url": f"sqlite:///{work / 'analytics.sqlite3'}"},
        "writer": {"spool_path": str(work / "spool")}, "sentiment": {"enabled": False},
        "intents": {"rules": RULES}}))
    await analytics.start()
    await analytics.flush(60)  # the database is prepared before anything is counted
    writer = analytics.writer
    records = captured(n)

    def store(items: list[Any]) -> None:
        prepared = writer._prepare(items)
        writer._store(prepared)
        prepared.complete()

    start = time.perf_counter()
    for k in range(0, n, batch):
        counted(store, [records[k:k + batch]])  # one batch inside one callback
    elapsed = time.perf_counter() - start
    written = analytics.health()["written"]
    await analytics.close()
    shutil.rmtree(work, ignore_errors=True)
    if written != n:
        raise SystemExit(f"count_writer: {written:,} of {n:,} events were stored")
    print(f"{n:,} events in batches of {batch:,}: {elapsed / n * 1e6:.1f} us an event")


def cli() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=2000, help="events per batch "
                   "(writer.max_batch, what the writer takes from a backlog)")
    a = p.parse_args()
    asyncio.run(main(a.events, a.batch))


if __name__ == "__main__":
    cli()
