"""Anomaly detection on simulated daily series: how often a clean day scores over the
threshold, and whether planted spikes and drops are found.

    python benchmarks/bench_anomaly.py [--series 200]

Each series is eight weeks: weekdays about 100, weekends about 60, a trend of +0.5 a
day and normal noise of sd 3 (the generator of tests/test_anomaly.py). For comparison it
also prints the share robust STL's own residuals would flag.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

import numpy as np
from statsmodels.tsa.seasonal import STL

from optimizer.anomaly import MAD_SCALE, detect_anomalies

DAYS = [date(2026, 1, 5) + timedelta(days=i) for i in range(56)]


def series(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([60.0 if d.weekday() >= 5 else 100.0 for d in DAYS])
    return base + np.arange(len(DAYS)) * 0.5 + rng.normal(0, 3.0, len(DAYS))


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--series", type=int, default=200)
    p.add_argument("--threshold", type=float, default=3.5)
    a = p.parse_args()
    days = a.series * len(DAYS)
    flagged = robust = found = 0
    for seed in range(a.series):
        y = series(seed)
        flagged += len(detect_anomalies("m", DAYS, list(y), threshold=a.threshold))
        resid = STL(y, period=7, seasonal=13, robust=True).fit().resid
        centre = np.median(resid)
        scale = np.median(np.abs(resid - centre)) * MAD_SCALE
        robust += int((np.abs(resid - centre) / scale >= a.threshold).sum())
        planted = y.copy()
        planted[23] += 45   # a Wednesday spike
        planted[36] -= 40   # a Tuesday drop
        hits = {x.day for x in detect_anomalies("m", DAYS, list(planted),
                                                threshold=a.threshold)}
        found += (DAYS[23] in hits) + (DAYS[36] in hits)
    print(f"clean days flagged: {flagged} of {days:,} ({flagged / days:.2%}); robust STL's "
          f"own residuals would flag {robust} ({robust / days:.2%})")
    print(f"planted spikes and drops found: {found} of {2 * a.series}")


if __name__ == "__main__":
    main()
