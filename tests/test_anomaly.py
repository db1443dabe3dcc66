"""Anomalies that respect the weekly rhythm, and threshold rules (pure functions)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from optimizer.anomaly import detect_anomalies, parse_rule

DAYS = [date(2026, 1, 5) + timedelta(days=i) for i in range(56)]   # eight weeks from Monday


def weekly(seed: int, noise: float = 3.0) -> np.ndarray:
    """Weekdays about 100, weekends about 60, slowly growing, with noise."""
    rng = np.random.default_rng(seed)
    base = np.array([60.0 if d.weekday() >= 5 else 100.0 for d in DAYS])
    return base + np.arange(len(DAYS)) * 0.5 + rng.normal(0, noise, len(DAYS))


def test_weekends_are_no_anomaly() -> None:
    for seed in range(20):
        assert detect_anomalies("interactions", DAYS, list(weekly(seed))) == []


def test_finds_planted_spike_and_drop_with_direction_and_expectation() -> None:
    y = weekly(1)
    clean = y.copy()
    assert [DAYS[i].strftime("%a") for i in (23, 36, 26)] == ["Wed", "Tue", "Sat"]
    y[23] += 45          # a Wednesday spike
    y[36] -= 40          # a Tuesday drop
    y[26] = y[25]        # a Saturday as busy as the Friday before
    found = {(a.day, a.direction) for a in detect_anomalies("interactions", DAYS, list(y))}
    assert found == {(DAYS[23], "spike"), (DAYS[36], "drop"), (DAYS[26], "spike")}
    spike = next(a for a in detect_anomalies("interactions", DAYS, list(y))
                 if a.day == DAYS[23])
    assert spike.value == pytest.approx(y[23])
    assert spike.expected == pytest.approx(clean[23], abs=8)   # trend plus weekday
    assert spike.score > 3.5


def test_since_limits_what_is_reported_and_gaps_are_tolerated() -> None:
    y = list(weekly(2))
    y[10] = y[10] + 60
    y[50] = y[50] + 60
    y[20] = None   # a day with no value: never reported, filled for the fit
    days = [a.day for a in detect_anomalies("m", DAYS, y, since=DAYS[30])]
    assert days == [DAYS[50]]
    assert detect_anomalies("m", DAYS[:13], y[:13]) == []      # under two weeks: nothing
    assert detect_anomalies("m", DAYS, [5.0] * len(DAYS)) == []  # flat: nothing
    with pytest.raises(ValueError, match="3 days but 2 values"):
        detect_anomalies("m", DAYS[:3], [1.0, 2.0])


def test_threshold_rules() -> None:
    r = parse_rule("error_rate > 0.05")
    assert (r.metric, r.op, r.threshold, r.change, r.period) == \
        ("error_rate", ">", 0.05, None, "daily")
    assert r.breached(0.06) and not r.breached(0.05)
    w = parse_rule("revenue week-over-week < -10%")
    assert (w.metric, w.op, w.threshold, w.change) == ("revenue", "<", -0.10, "weekly")
    assert w.breached(-0.2) and not w.breached(-0.05)
    assert parse_rule("csat_avg <= 3.5").breached(3.5)
    with pytest.raises(ValueError, match="is not a rule"):
        parse_rule("error rate is high")
    with pytest.raises(ValueError, match="unknown change 'year-over-year'"):
        parse_rule("revenue year-over-year < 0")
    with pytest.raises(ValueError, match="unknown metric 'profit'"):
        parse_rule("profit > 1", ["revenue"])
