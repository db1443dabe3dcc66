"""``BotOptimizer``: the four analyses over one tenant's period, as the design names them.

>>> opt = BotOptimizer(engine)                                   # doctest: +SKIP
>>> opt.analyze_monetization_triggers("default").profitable_intents   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .data import OptimizerData, load_data
from .engagement import SentimentEngagementResult, optimize_sentiment_engagement
from .monetization import (
    DEFAULT_FUNNEL_INTENTS,
    MonetizationResult,
    analyze_monetization_triggers,
)
from .personalization import PersonalizationResult, generate_personalization_rules
from .recommend import ExperimentFinding, Recommendation, generate_optimization_recommendations
from .results import Serializable

Loader = Callable[[str, datetime, datetime], OptimizerData]


@dataclass(frozen=True)
class OptimizationReport(Serializable):
    """Everything one run found, for one tenant and period."""

    tenant_id: str
    period_start: str
    period_end: str
    interactions: int
    members: int
    monetization: MonetizationResult
    personalization: PersonalizationResult
    sentiment: SentimentEngagementResult
    recommendations: tuple[Recommendation, ...]
    seconds: float = 0.0
    error: str | None = None
    assignments: dict[int, str] = field(default_factory=dict, metadata={"json": False})


class BotOptimizer:
    """Monetization triggers, personalization rules, sentiment engagement and ranked
    recommendations for a tenant over a period (default: the last ``days`` days).

    ``source`` is an SQLAlchemy ``Engine``, ``Connection`` or ``Session`` over the
    plugin's database, an :class:`OptimizerData` (used whatever the period asked), or a
    function ``(tenant_id, start, end) -> OptimizerData``. Results are frozen dataclasses
    with ``to_dict()`` and ``to_json()``; all randomness is seeded by ``seed``.
    """

    def __init__(self, source: Any, *, days: float = 30, bot_id: int | None = None,
                 session_timeout: timedelta = timedelta(minutes=30),
                 attribution_window: timedelta = timedelta(hours=24),
                 fdr: float = 0.05, min_support: int = 30,
                 funnel_intents: Sequence[str] = DEFAULT_FUNNEL_INTENTS,
                 containment_target: float = 0.8, seed: int = 7,
                 clock: Callable[[], datetime] | None = None):
        if not 0 < fdr < 1:
            raise ValueError(f"fdr must be between 0 and 1, got {fdr}")
        if days <= 0:
            raise ValueError(f"days must be positive, got {days}")
        self.source = source
        self.days = days
        self.bot_id = bot_id
        self.session_timeout = session_timeout
        self.attribution_window = attribution_window
        self.fdr = fdr
        self.min_support = min_support
        self.funnel_intents = tuple(funnel_intents)
        self.containment_target = containment_target
        self.seed = seed
        self.clock = clock or (lambda: datetime.now(UTC))
        self._cache: dict[tuple[str, datetime, datetime], OptimizerData] = {}

    def period(self, start: datetime | None = None, end: datetime | None = None
               ) -> tuple[datetime, datetime]:
        end = end or self.clock()
        start = start or end - timedelta(days=self.days)
        return start, end

    def data(self, tenant_id: str, start: datetime | None = None,
             end: datetime | None = None) -> OptimizerData:
        """The tenant's rows for the period (read once, then reused)."""
        if isinstance(self.source, OptimizerData):
            return self.source
        start, end = self.period(start, end)
        key = (tenant_id, start, end)
        if key not in self._cache:
            if callable(self.source) and not hasattr(self.source, "connect"):
                self._cache[key] = self.source(tenant_id, start, end)
            else:
                self._cache[key] = load_data(
                    self.source, tenant_id, start, end, bot_id=self.bot_id,
                    session_timeout=self.session_timeout,
                    attribution_window=self.attribution_window)
        return self._cache[key]

    def analyze_monetization_triggers(self, tenant_id: str, start: datetime | None = None,
                                      end: datetime | None = None, *, model: bool = True
                                      ) -> MonetizationResult:
        return analyze_monetization_triggers(
            self.data(tenant_id, start, end), fdr=self.fdr, min_support=self.min_support,
            funnel_intents=self.funnel_intents, model=model, seed=self.seed)

    def generate_personalization_rules(self, tenant_id: str, start: datetime | None = None,
                                       end: datetime | None = None) -> PersonalizationResult:
        return generate_personalization_rules(
            self.data(tenant_id, start, end), seed=self.seed, fdr=self.fdr,
            funnel_intents=self.funnel_intents, min_support=max(10, self.min_support // 2))

    def optimize_sentiment_engagement(self, tenant_id: str, start: datetime | None = None,
                                      end: datetime | None = None
                                      ) -> SentimentEngagementResult:
        return optimize_sentiment_engagement(self.data(tenant_id, start, end), fdr=self.fdr)

    def generate_optimization_recommendations(
            self, tenant_id: str, start: datetime | None = None, end: datetime | None = None,
            *, experiments: Sequence[ExperimentFinding] = ()) -> list[Recommendation]:
        return list(self.run(tenant_id, start, end, experiments=experiments).recommendations)

    def run(self, tenant_id: str, start: datetime | None = None, end: datetime | None = None,
            *, experiments: Sequence[ExperimentFinding] = (),
            progress: Callable[[str], None] | None = None) -> OptimizationReport:
        """All four analyses at once (the data are read once). ``progress`` is called
        with the name of each step as it begins."""
        import time

        def step(name: str) -> None:
            if progress is not None:
                progress(name)

        t0 = time.perf_counter()
        step("reading the data")
        data = self.data(tenant_id, start, end)
        step("monetization triggers")
        monetization = self.analyze_monetization_triggers(tenant_id, start, end)
        step("segments and rules")
        personalization = self.generate_personalization_rules(tenant_id, start, end)
        step("sentiment and escalations")
        sentiment = self.optimize_sentiment_engagement(tenant_id, start, end)
        step("recommendations")
        recommendations = generate_optimization_recommendations(
            data, monetization, personalization, sentiment, experiments,
            containment_target=self.containment_target)
        inter = data.interactions
        error = None if not inter.empty else "no interactions in the period"
        return OptimizationReport(
            tenant_id, data.start.isoformat(), data.end.isoformat(), len(inter),
            int(inter["member_id"].nunique()), monetization, personalization, sentiment,
            tuple(recommendations), time.perf_counter() - t0, error,
            personalization.assignments)
