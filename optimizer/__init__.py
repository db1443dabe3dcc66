"""Pure analysis for bot-analytics: statistics over plain frames and frozen dataclasses.

Imports nothing from ``bot_analytics`` or aiogram. :class:`BotOptimizer` reads the
plugin's tables through the columns the metric contract documents. Names are imported on
first use, so ``optimizer.stats`` alone does not load pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import BotOptimizer, OptimizationReport
    from .data import OptimizerData, load_data
    from .recommend import ExperimentFinding, Recommendation

_WHERE = {"BotOptimizer": "core", "OptimizationReport": "core", "OptimizerData": "data",
          "load_data": "data", "ExperimentFinding": "recommend", "Recommendation": "recommend"}

__all__ = ["BotOptimizer", "ExperimentFinding", "OptimizationReport", "OptimizerData",
           "Recommendation", "load_data"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
