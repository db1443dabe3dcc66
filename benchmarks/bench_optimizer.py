"""A full optimizer run (monetization triggers, segments and rules, sentiment and
escalations, recommendations) over about 1,000,000 interactions of 100,000 members,
read from the database.

    python benchmarks/bench_optimizer.py [--members 100000] [--database-url URL]

The synthetic traffic (optimizer.synthetic, with its planted effects) is written into a
fresh database first; the run is then timed in a process of its own, so that the peak
memory printed is the run's (reading the data included), not the data generator's.
Targets: 60 s or less, under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 28


def write(url: str, members: int, seed: int) -> int:
    from bot_analytics.storage import db
    from optimizer.synthetic import synthetic_data

    t0 = time.perf_counter()
    data = synthetic_data(members, days=DAYS, seed=seed, start=START,
                          sessions_per_member=4.0)
    print(f"generated {len(data.interactions):,} interactions of "
          f"{data.interactions['member_id'].nunique():,} members in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    sqlite = engine.dialect.name == "sqlite"

    def ts(series: object) -> list[object]:
        values = list(series.dt.to_pydatetime())  # type: ignore[attr-defined]
        if sqlite:
            return [v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in values]
        return values

    i = data.interactions
    none = i.astype(object).where(i.notna(), None)
    inter = list(zip(i["id"].astype(int), [1] * len(i), i["id"].astype(int), ts(i["ts"]),
                     i["member_id"].astype(int), i["member_id"].astype(int), none["text"],
                     none["intent"], none["sentiment"], none["sentiment_score"],
                     i["escalated"].astype(bool), none["response_text"], strict=True))
    p = data.purchases
    conv = list(zip(p["ts"].pipe(ts), p["member_id"].astype(int),
                    p["interaction_id"].astype(int), p["value"].astype(float),
                    (p["value"] * 100).round().astype(int), p["currency"],
                    [f"o{n}" for n in range(len(p))], strict=True))
    m = data.members
    mem = list(zip(m["member_id"].astype(int), ts(m["first_seen"]),
                   m["campaign"].astype(object).where(m["campaign"].notna(), None), strict=True))
    b = data.blocks
    blk = list(zip(b["member_id"].astype(int), ts(b["ts"]), range(len(b)), strict=True))
    t0 = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.cursor()
        mark = "?" if sqlite else "%s"

        def many(sql: str, rows: Sequence[tuple[object, ...]]) -> None:
            raw.executemany(sql.replace("?", mark), rows)

        many("INSERT INTO interactions (id, tenant_id, bot_id, update_id, event_type, ts, "
             "chat_id, chat_type, member_id, text, intent, sentiment, sentiment_score, "
             "handled, handler_time_ms, response_text, reply_count, escalated, "
             "monetization_event) VALUES (?, 'default', ?, ?, 'message', ?, ?, 'private', ?, "
             "?, ?, ?, ?, true, 1.0, ?, 1, ?, false)",
             [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[11], r[10])
              for r in inter])
        many("INSERT INTO conversions (tenant_id, bot_id, ts, member_id, interaction_id, "
             "outcome, value, amount_minor, currency, external_id, source, "
             "checkout_completed) VALUES ('default', 1, ?, ?, ?, 'purchased', ?, ?, ?, ?, "
             "'api', true)", conv)
        many("INSERT INTO members (tenant_id, bot_id, member_id, first_seen, last_seen, "
             "campaign, blocked, opted_out) VALUES ('default', 1, ?, ?, ?, ?, false, false)",
             [(r[0], r[1], r[1], r[2]) for r in mem])
        many("INSERT INTO member_events (tenant_id, bot_id, member_id, ts, update_id, kind) "
             "VALUES ('default', 1, ?, ?, ?, 'blocked')", blk)
    print(f"wrote them in {time.perf_counter() - t0:.1f} s", flush=True)
    engine.dispose()
    return len(i)


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image;
    getrusage's maxrss would carry the parent's peak over the exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str) -> dict[str, object]:
    from bot_analytics.storage import db
    from optimizer import BotOptimizer

    engine = db.create_db_engine(url)
    t0 = time.perf_counter()
    steps: dict[str, float] = {}
    since, current = t0, ""  # when the current step started, and its name

    def progress(step: str) -> None:
        nonlocal since, current
        now = time.perf_counter()
        if current:
            steps[current] = now - since
        since, current = now, step

    report = BotOptimizer(engine).run("default", START, START + timedelta(days=DAYS),
                                      progress=progress)
    progress("")
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "steps": steps, "interactions": report.interactions,
            "members": report.members,
            "peak_rss_mib": peak_rss_mib(),
            "profitable": [t.key for t in report.monetization.profitable_intents],
            "top_phrase": (report.sentiment.de_escalation_triggers[0].phrase
                           if report.sentiment.de_escalation_triggers else None),
            "segments": len(report.personalization.segments)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None,
                        help="an empty database to fill (default: a temporary SQLite file)")
    parser.add_argument("--run-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_only:
        print(json.dumps(run(args.run_only)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        write(url, args.members, args.seed)
        out = subprocess.run([sys.executable, __file__, "--run-only", url], check=True,
                             capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if args.database_url:
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                for table in ("interactions", "conversions", "members", "member_events"):
                    conn.execute(sa.text(f"DELETE FROM {table}"))
            engine.dispose()
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result["steps"].items())
    print(f"optimizer run over {result['interactions']:,} interactions of "
          f"{result['members']:,} members: {result['seconds']:.1f} s ({steps}); "
          f"peak RSS {result['peak_rss_mib']:,.0f} MiB")
    print(f"found: profitable {result['profitable']}, top phrase {result['top_phrase']!r}, "
          f"{result['segments']} segments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
