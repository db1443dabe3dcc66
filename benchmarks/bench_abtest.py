"""Analysing an experiment with 1,000,000 exposed members (target: under a second),
on SQLite or PostgreSQL: members per variant and day, converters and their revenue, all
counted in SQL, then every statistic of ``bot-analytics ab show``.

    python benchmarks/bench_abtest.py [--members 1000000] [--database-url URL]

The first analysis also imports statsmodels and scipy; the figure is the median of the
runs after it, as in a running bot or a report job. ``--cold`` reports the first too.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot_analytics.config import ExperimentSettings
from bot_analytics.experiments import ExperimentDef
from bot_analytics.experiments import store as exp_store
from bot_analytics.experiments.analysis import analyze
from bot_analytics.storage import db
from bot_analytics.storage.queries import ASSIGNMENTS, CONVERSIONS

START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 30


def fill(engine: sa.Engine, members: int, seed: int) -> ExperimentDef:
    exp = ExperimentDef("bench", "pitch", ExperimentSettings.model_validate({
        "variants": [{"name": "control"}, {"name": "discount"}],
        "secondary_metrics": ["revenue_per_member"]}))
    rng = random.Random(seed)
    assignments: list[dict[str, object]] = []
    conversions: list[dict[str, object]] = []

    def flush() -> None:
        with engine.begin() as conn:
            if assignments:
                db.insert_ignore(conn, ASSIGNMENTS, assignments)
            if conversions:
                db.insert_ignore(conn, CONVERSIONS, conversions)
        assignments.clear()
        conversions.clear()

    for m in range(1, members + 1):
        variant = exp.assign(m) or "control"
        first = START + timedelta(seconds=rng.uniform(0, DAYS * 86_400))
        assignments.append({
            "tenant_id": "bench", "experiment": "pitch", "member_id": m, "bot_id": 1,
            "variant": variant, "first_exposed_at": first, "last_exposed_at": first,
            "exposures": 1 + int(rng.expovariate(1.0))})
        if rng.random() < (0.05 if variant == "control" else 0.053):
            ts = first + timedelta(hours=rng.uniform(0, 72))
            conversions.append({
                "tenant_id": "bench", "bot_id": 1, "ts": ts, "member_id": m, "chat_id": m,
                "interaction_id": None, "outcome": "purchased", "value": 29.0,
                "amount_minor": 2900, "currency": "USD", "external_id": f"o{m}",
                "source": "api", "intent": None, "intent_score": None, "trigger_text": None,
                "bot_message": None, "checkout_completed": True, "pages_visited": None,
                "time_to_conversion_s": None, "details": None})
        if len(assignments) >= 50_000:
            flush()
    flush()
    with engine.begin() as conn:
        exp_store.save_definition(conn, exp, START)
    return exp


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="also report the first analysis")
    a = p.parse_args()
    url = a.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'abtest.sqlite3'}"
    engine = db.create_db_engine(url)
    db.upgrade(engine)
    t = time.perf_counter()
    fill(engine, a.members, seed=1)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE experiment_assignments; ANALYZE conversions"))
    print(f"loaded {a.members:,} assignments in {time.perf_counter() - t:.0f} s "
          f"({url.split('?')[0]})")
    end = START + timedelta(days=DAYS + 1)
    times = []
    report = None
    for _ in range(a.runs + 1):
        t = time.perf_counter()
        report = analyze(engine, "pitch", tenant_id="bench", now=end)
        times.append(time.perf_counter() - t)
    assert report is not None
    members = sum(v.members for v in report.primary.variants)
    if a.cold:
        print(f"first analysis (imports statsmodels and scipy): {times[0]:.2f} s")
    print(f"analysis of {members:,} exposed members ({report.decision}"
          f"{': ' + report.winner if report.winner else ''}): median "
          f"{statistics.median(times[1:]):.3f} s of {a.runs} runs   target: under 1 s")
    engine.dispose()


if __name__ == "__main__":
    main()
