"""Rolling up one day: the time to compute and store every KPI of one day with
1,000,000 interactions (target: 5 seconds or less), on SQLite or PostgreSQL.

    python benchmarks/bench_rollup.py [--rows 1000000] [--members 50000]
                                      [--database-url URL] [--history-days 0]
                                      [--no-fill] [--repeat 3]

``--history-days N`` first fills N earlier days with the same volume, to show whether
the cost follows the period's rows or the whole table's (``--history-days 9``: ten
million rows). ``--no-fill`` rolls up a database an earlier run filled.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot_analytics.kpis.rollup import rollup_period
from bot_analytics.storage import db
from bot_analytics.storage.queries import INTERACTIONS

DAY = datetime(2026, 6, 15, tzinfo=UTC)
INTENTS = ["greeting", "pricing", "unknown", "escalate", "purchase", "delivery", "/start"]


def fill(engine: object, day: datetime, rows: int, members: int, seed: int,
         first_update: int) -> None:
    """One day of ``rows`` interactions, stored in time order as the writer stores them
    (it appends each batch as the updates arrive)."""
    rng = random.Random(seed)
    events = []
    # Each member's interactions come in sessions of a few messages, minutes apart.
    per_member = max(1, rows // members)
    for m in range(members):
        t = rng.uniform(0, 86_000)
        for _ in range(per_member):
            events.append((min(t, 86_399.0), m + 1))
            t += 60 * rng.choice([1, 2, 5, 45])
    events.sort()
    batch = []
    for n, (seconds, member) in enumerate(events):
        score = rng.uniform(-1, 1) if rng.random() < 0.7 else None
        replied = rng.random() < 0.85
        batch.append({
            "tenant_id": "bench", "bot_id": 1, "update_id": first_update + n + 1,
            "event_type": "message", "ts": day + timedelta(seconds=seconds),
            "chat_id": member, "chat_type": "private", "member_id": member,
            "language_code": "en", "text": None, "command": None,
            "intent": rng.choice(INTENTS), "intent_confidence": 1.0,
            "sentiment": None if score is None else
            ("positive" if score >= 0.05 else "negative" if score <= -0.05
             else "neutral"),
            "sentiment_score": score, "handled": rng.random() < 0.95, "error": None,
            "handler_time_ms": 3.0, "response_text": None,
            "response_time_ms": rng.uniform(5, 800) if replied else None,
            "reply_count": 1 if replied else 0, "session_id": None,
            "escalated": rng.random() < 0.02, "monetization_event": False})
        if len(batch) == 20_000:
            with engine.begin() as conn:  # type: ignore[attr-defined]
                db.insert_ignore(conn, INTERACTIONS, batch)
            batch.clear()
    if batch:
        with engine.begin() as conn:  # type: ignore[attr-defined]
            db.insert_ignore(conn, INTERACTIONS, batch)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--members", type=int, default=50_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--history-days", type=int, default=0)
    p.add_argument("--no-fill", action="store_true",
                   help="the database already holds the rows of an earlier run: only roll up")
    p.add_argument("--repeat", type=int, default=3,
                   help="roll the day up this many times (the first run includes imports)")
    a = p.parse_args()
    url = a.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'rollup.sqlite3'}"
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    t = time.perf_counter()
    if not a.no_fill:
        for d in range(a.history_days, 0, -1):
            fill(engine, DAY - timedelta(days=d), a.rows, a.members, d, d * 10 * a.rows)
            print(f"  day -{d} loaded", flush=True)
        fill(engine, DAY, a.rows, a.members, 0, 0)
        if engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load: statistics for the planner,
            # and the visibility map that lets index-only scans skip the table.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE interactions")
        print(f"loaded {a.rows * (a.history_days + 1):,} interactions in "
              f"{time.perf_counter() - t:.0f} s ({url.split('?')[0]})")
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(INTERACTIONS)).scalar_one()
        day = conn.execute(sa.select(sa.func.count()).select_from(INTERACTIONS).where(
            INTERACTIONS.c.ts >= DAY, INTERACTIONS.c.ts < DAY + timedelta(days=1))
        ).scalar_one()
    for run in range(1, a.repeat + 1):
        t = time.perf_counter()
        written = rollup_period(engine, "daily", DAY)
        elapsed = time.perf_counter() - t
        print(f"run {run}: daily rollup of {day:,} interactions ({total:,} in the table): "
              f"{elapsed:.2f} s, {written} KPI rows   target: 5 s or less", flush=True)


if __name__ == "__main__":
    main()
