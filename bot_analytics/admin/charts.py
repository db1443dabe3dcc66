"""PNG charts for the chat, drawn with matplotlib's Agg backend in memory.

Sized for a phone: 1200 x 750 pixels, large type, few lines, labelled directly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING

from ..experiments.analysis import DailyPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _figure(title: str) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=150)
    ax.set_title(title, fontsize=15, loc="left", pad=12)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _png(fig: Figure) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def experiment_chart(name: str, points: Sequence[DailyPoint], control: str) -> bytes:
    """Each variant's cumulative conversion rate by day, with its 95% interval."""
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(f"{name}: conversion rate by variant (95% interval)")
    variants = list(dict.fromkeys(p.variant for p in points))
    for i, variant in enumerate(variants):
        mine = [p for p in points if p.variant == variant and p.members > 0]
        if not mine:
            continue
        color = _COLORS[i % len(_COLORS)]
        days = date2num([p.day for p in mine])
        ax.fill_between(days, [p.ci_low for p in mine],
                        [p.ci_high for p in mine], color=color, alpha=0.15, linewidth=0)
        label = f"{variant} (control)" if variant == control else variant
        ax.plot(days, [p.rate for p in mine], color=color, linewidth=2.5,
                label=label)
        last = mine[-1]
        ax.annotate(f"{last.rate:.1%}", (float(days[-1]), last.rate),
                    xytext=(6, 0), textcoords="offset points", fontsize=12, color=color,
                    va="center")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=12, frameon=False, loc="upper left")
    return _png(fig)


def daily_chart(title: str, days: Sequence[date], series: Mapping[str, Sequence[float]]
                ) -> bytes:
    """Daily values, one line per series (interactions, conversions...), each on its own
    scale when there are two."""
    from matplotlib.dates import DateFormatter, date2num

    fig, ax = _figure(title)
    x = date2num(list(days))
    for i, (label, values) in enumerate(series.items()):
        target = ax
        if i == 1:
            target = ax.twinx()
            target.spines["top"].set_visible(False)
        color = _COLORS[i % len(_COLORS)]
        target.plot(x, values, color=color, linewidth=2.5, marker="o", markersize=4,
                    label=label)
        target.set_ylabel(label, color=color, fontsize=12)
        target.tick_params(axis="y", labelcolor=color, labelsize=11)
        target.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    return _png(fig)


def sentiment_chart(title: str, days: Sequence[date], shares: Mapping[str, Sequence[float]]
                    ) -> bytes:
    """The daily mix of positive, neutral and negative messages, as stacked bars."""
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(title)
    x = date2num(list(days))
    bottom = [0.0] * len(days)
    colors = {"positive": "#2ca02c", "neutral": "#bbbbbb", "negative": "#d62728"}
    for label in ("positive", "neutral", "negative"):
        values = list(shares.get(label, [0.0] * len(days)))
        ax.bar(x, values, bottom=bottom, width=0.8, color=colors[label], label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    ax.set_ylim(0, 1)
    ax.legend(fontsize=12, frameon=False, loc="upper center", ncol=3,
              bbox_to_anchor=(0.5, -0.08))
    return _png(fig)


def intents_chart(title: str, rows: Sequence[tuple[str, int, float, float, float]]) -> bytes:
    """Conversion rate by intent with its 95% interval; rows are (intent, sessions, rate,
    low, high), drawn top to bottom."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(title)
    ax.grid(axis="y", alpha=0)
    ax.grid(axis="x", alpha=0.3)
    labels = [f"{name} ({n:,})" for name, n, *_ in rows][::-1]
    rates = [r for _, _, r, _, _ in rows][::-1]
    lows = [max(0.0, r - lo) for _, _, r, lo, _ in rows][::-1]
    highs = [max(0.0, hi - r) for _, _, r, _, hi in rows][::-1]
    y = list(range(len(rows)))
    ax.barh(y, rates, color=_COLORS[0], alpha=0.85, height=0.6)
    ax.errorbar(rates, y, xerr=[lows, highs], fmt="none", ecolor="#333333", capsize=4,
                linewidth=1.5)
    ax.set_yticks(y, labels, fontsize=12)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlim(left=0)
    ax.set_xlabel("sessions that bought (95% interval); sessions in brackets", fontsize=11)
    return _png(fig)
