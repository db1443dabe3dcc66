"""What every KPI family produces."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Kpi:
    category: str
    metric: str
    value: float
    sample_size: int
    dimension: str | None = None


def rate(category: str, metric: str, numerator: int, denominator: int) -> list[Kpi]:
    """A share; absent (no row) when the denominator is empty (KPIS.md)."""
    if denominator == 0:
        return []
    return [Kpi(category, metric, numerator / denominator, denominator)]


def mean(category: str, metric: str, values: Sequence[float]) -> list[Kpi]:
    if not values:
        return []
    return [Kpi(category, metric, math.fsum(values) / len(values), len(values))]


def nearest_rank(sorted_values: Sequence[float], p: float) -> float:
    """Percentile p (0 < p <= 1) of n values: the value at rank ceil(p * n)."""
    n = len(sorted_values)
    return sorted_values[max(1, math.ceil(p * n)) - 1]
