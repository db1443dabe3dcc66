"""Monetization: purchases, revenue (kept apart by currency), conversion rate, ARPU,
revenue by intent, purchases and revenue by campaign."""

from __future__ import annotations

from collections import defaultdict

from ..currency import exponent
from .common import Kpi, rate
from .data import PeriodData

CATEGORY = "monetization"


def compute(d: PeriodData) -> list[Kpi]:
    purchases = d.purchases
    out = [Kpi(CATEGORY, "conversions", len(purchases), len(purchases))]
    buying = d.sessions.led_to(i for i, outcomes in d.trigger_outcomes.items()
                               if "purchased" in outcomes)
    out += rate(CATEGORY, "conversion_rate", int(buying.sum()), len(d.sessions))
    by_currency: dict[str | None, list[int]] = defaultdict(list)
    for p in purchases:
        by_currency[p.currency].append(p.amount_minor)
    currencies = [c for c in by_currency if c is not None]
    active = d.totals.active_users

    def money(minor: int, currency: str) -> float:
        # Summed in minor units (exact), then shown in the main unit.
        return minor / 10 ** exponent(currency)

    if len(currencies) == 1:
        cur = currencies[0]
        total = money(sum(by_currency[cur]), cur)
        out.append(Kpi(CATEGORY, "revenue", total, len(by_currency[cur])))
        if active:
            out.append(Kpi(CATEGORY, "arpu", total / active, active))
    else:
        # Mixed currencies are never added up: one row per currency.
        for cur in sorted(currencies):
            out.append(Kpi(CATEGORY, "revenue", money(sum(by_currency[cur]), cur),
                           len(by_currency[cur]), f"currency={cur}"))
    by_intent: dict[tuple[str, str], list[int]] = defaultdict(list)
    for p in purchases:
        if p.currency is not None:
            by_intent[(p.intent or "(none)", p.currency)].append(p.amount_minor)
    for (intent, cur), amounts in sorted(by_intent.items()):
        dim = f"intent={intent}" if len(currencies) == 1 else f"intent={intent};currency={cur}"
        out.append(Kpi(CATEGORY, "revenue_by_intent", money(sum(amounts), cur),
                       len(amounts), dim))
    # The deep-link campaign the buyers came from ("(none)": no campaign).
    by_campaign: dict[str, int] = defaultdict(int)
    campaign_money: dict[tuple[str, str], list[int]] = defaultdict(list)
    for p in purchases:
        campaign = p.campaign or "(none)"
        by_campaign[campaign] += 1
        if p.currency is not None:
            campaign_money[(campaign, p.currency)].append(p.amount_minor)
    for campaign, count in sorted(by_campaign.items()):
        out.append(Kpi(CATEGORY, "conversions", count, count, f"campaign={campaign}"))
    for (campaign, cur), amounts in sorted(campaign_money.items()):
        dim = (f"campaign={campaign}" if len(currencies) == 1
               else f"campaign={campaign};currency={cur}")
        out.append(Kpi(CATEGORY, "revenue", money(sum(amounts), cur), len(amounts), dim))
    return out
