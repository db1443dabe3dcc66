"""Why the writer stores each batch in the thread that prepared it: what SQLite inserts
into ``interactions`` cost row by row, next to a thread running Python code, and as
one statement over a JSON text.

    python benchmarks/bench_store_threads.py [--rows 200000] [--batch 2000]
                                             [--beside-rows 20000]

Three timings, each on a new migrated SQLite file with the pragmas the plugin sets, in
transactions of ``--batch`` rows:

- ``row by row``: ``executemany`` of the insert the writer runs, as it runs it;
- ``beside a Python thread``: the same while another thread counts in a loop, as a
  writer thread that prepares the next batch while a second thread stores would.
  ``sqlite3`` lets go of the interpreter lock for each row it inserts and has to take it
  back before the next, and CPython hands the lock back to a waiting thread only after
  the switch interval (5 ms) has passed. These are the first ``--beside-rows`` rows of
  the set, and their rate is compared with the whole set's alone, which a growing
  table makes slower: the ratio printed understates the slowdown;
- ``one JSON statement``: each batch encoded as one JSON text and inserted by one
  ``INSERT ... SELECT ... FROM json_each(?)``, which would keep the lock released for
  the whole batch (the encoding is timed too).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot_analytics.storage import db
from bot_analytics.storage.queries import INTERACTIONS

WORDS = ["where", "is", "my", "order", "hello", "refund", "please", "premium", "late"]


def make_rows(n: int, first_update: int, columns: list[str], seed: int) -> list[tuple[Any, ...]]:
    """``n`` interaction rows as the writer passes them to ``sqlite3``: timestamps as
    text, one distinct update id each, members and sessions spread out."""
    rng = random.Random(seed)
    rows = []
    for i in range(first_update, first_update + n):
        member = rng.randint(1, 20_000)
        row = {"tenant_id": "default", "bot_id": 42, "update_id": i, "event_type": "message",
               "ts": f"2026-06-15 {i // 3_600_000 % 24:02d}:{i // 60_000 % 60:02d}:"
                     f"{i // 1000 % 60:02d}.{i % 1000:03d}000",
               "chat_id": member, "chat_type": "private", "member_id": member,
               "language_code": "en", "text": " ".join(rng.choices(WORDS, k=4)),
               "command": None, "intent": "delivery", "intent_confidence": 1.0,
               "sentiment": "neutral", "sentiment_score": 0.0, "handled": 1, "error": None,
               "handler_time_ms": 1.5, "response_text": "Thanks, noted.",
               "response_time_ms": 0.8, "reply_count": 1, "session_id": f"s{member}-{i // 50}",
               "escalated": 0, "monetization_event": 0}
        rows.append(tuple(row[c] for c in columns))
    return rows


def timed_batches(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], batch: int,
                  insert: Callable[[list[tuple[Any, ...]]], None]) -> float:
    start = time.perf_counter()
    for k in range(0, len(rows), batch):
        insert(rows[k:k + batch])
        conn.commit()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--beside-rows", type=int, default=20_000,
                   help="rows inserted beside a thread running Python code")
    a = p.parse_args()
    if min(a.rows, a.batch, a.beside_rows) < 1:
        p.error("--rows, --batch and --beside-rows must be at least 1")
    if a.beside_rows > a.rows:
        p.error(f"--beside-rows ({a.beside_rows:,}) must not exceed --rows ({a.rows:,}): "
                "they are the first rows of the same set")

    work = Path(tempfile.mkdtemp(prefix="bench-store-threads-"))
    columns = [c.name for c in INTERACTIONS.columns if c.name != "id"]
    names, marks = ",".join(columns), ",".join("?" * len(columns))
    sql = f"INSERT INTO interactions ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    picks = ",".join(f"value->>{i}" for i in range(len(columns)))
    json_sql = (f"INSERT INTO interactions ({names}) SELECT {picks} FROM json_each(?) "
                "WHERE true ON CONFLICT DO NOTHING")
    print(f"SQLite {sqlite3.sqlite_version}; transactions of {a.batch:,} rows, "
          "each timing on an empty database of its own")

    def timed(name: str, rows: list[tuple[Any, ...]], json_text: bool = False) -> float:
        """Seconds to insert ``rows`` into a new database, row by row or as JSON."""
        engine = db.create_db_engine(f"sqlite:///{work / name}.sqlite3")
        db.upgrade(engine)
        raw = engine.raw_connection()
        conn: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]

        def insert(batch: list[tuple[Any, ...]]) -> None:
            if json_text:
                conn.execute(json_sql, (json.dumps(batch),))
            else:
                conn.executemany(sql, batch)

        try:
            seconds = timed_batches(conn, rows, a.batch, insert)
            stored = conn.execute("SELECT count(*) FROM interactions").fetchone()[0]
            if stored != len(rows):
                raise SystemExit(f"{name}: {stored:,} rows stored of {len(rows):,}")
            return seconds
        finally:
            raw.close()
            engine.dispose()

    try:
        rows = make_rows(a.rows, 1, columns, 1)
        alone = timed("alone", rows)
        print(f"row by row:              {a.rows:>9,} rows in {alone:6.2f} s, "
              f"{a.rows / alone:>9,.0f} rows/s")

        stop = threading.Event()

        def python_work() -> None:
            count = 0
            while not stop.is_set():
                for _ in range(1000):
                    count += 1

        spinner = threading.Thread(target=python_work, name="python-work")
        spinner.start()
        try:
            beside = timed("beside", rows[:a.beside_rows])
        finally:
            stop.set()
            spinner.join()
        print(f"beside a Python thread:  {a.beside_rows:>9,} rows in {beside:6.2f} s, "
              f"{a.beside_rows / beside:>9,.0f} rows/s "
              f"({(a.rows / alone) / (a.beside_rows / beside):.0f} times slower)")

        as_json = timed("json", rows, json_text=True)
        print(f"one JSON statement:      {a.rows:>9,} rows in {as_json:6.2f} s, "
              f"{a.rows / as_json:>9,.0f} rows/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
