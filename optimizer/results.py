"""Shared pieces of the optimizer's results: JSON serialisation and small statistics."""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` as JSON-ready Python: dataclasses as dicts, NaN and infinity as None,
    times as ISO text, numpy scalars as Python numbers."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class Serializable:
    """Mixin for the frozen result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        out = plain(self)
        assert isinstance(out, dict)
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion (statsmodels ``proportion_confint``),
    clipped to [0, 1] against rounding."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return max(0.0, float(low)), min(1.0, float(high))


def two_by_two_p_value(x1: int, n1: int, x0: int, n0: int, *, min_expected: float = 5.0
                       ) -> tuple[float, str]:
    """Two-sided p-value comparing x1/n1 with x0/n0: Fisher's exact test when an
    expected cell count is under ``min_expected``, else the pooled two-proportion z-test.
    Returns the p-value and the test's name."""
    from scipy.stats import fisher_exact

    from .stats import Sample, proportion_test

    total, conv = n1 + n0, x1 + x0
    if n1 <= 0 or n0 <= 0 or conv in (0, total):
        return 1.0, "none"
    expected = min(n1 * conv, n1 * (total - conv), n0 * conv, n0 * (total - conv)) / total
    if expected < min_expected:
        _, p = fisher_exact([[x1, n1 - x1], [x0, n0 - x0]], alternative="two-sided")
        return float(min(1.0, p)), "fisher"
    return float(proportion_test(Sample(n0, x0), Sample(n1, x1)).p_value), "z"
