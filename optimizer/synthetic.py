"""Synthetic bot traffic with known effects, for tests, benchmarks and trying the
optimizer out.

With ``planted=True`` the data hold three known effects:

* sessions where people ask about ``pricing`` buy far more often (30% against 6%); half
  of them also ``compare`` plans, an intent that travels with pricing but has no effect
  of its own;
* members who came through the ``spring_promo`` campaign buy twice as often;
* complaints that say the order is ``late`` are followed by a hand-off to a human 80% of
  the time, other complaints 15%.

With ``planted=False`` nothing matters: every session buys with the same probability and
every complaint is handed off with the same probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from .data import OptimizerData

INTENTS = ("greeting", "pricing", "delivery", "complaint", "refund", "faq", "unknown")
WEIGHTS = (0.25, 0.15, 0.15, 0.12, 0.08, 0.10, 0.15)
TEXTS = {
    "greeting": ["hi there", "hello!", "hey, good morning", "hi, I love this shop"],
    "pricing": ["how much is premium?", "what are your prices", "what does it cost"],
    "compare": ["what is the difference between basic and premium"],
    "delivery": ["how long does delivery take", "do you ship abroad"],
    "refund": ["can I get a refund", "how do refunds work"],
    "faq": ["what are your opening hours", "where are you based"],
    "unknown": ["do you sell bikes", "tell me a joke", "asdf"],
    "escalate": ["I want to talk to a human"],
}
LATE = ["my order is late again, this is terrible", "still late!! where is my parcel",
        "the delivery is so late, I am angry"]
OTHER_COMPLAINTS = ["the item arrived broken, awful", "wrong size, terrible service",
                    "bad quality, I am disappointed"]
SCORES = {"greeting": 0.5, "pricing": 0.0, "compare": 0.0, "delivery": 0.0, "refund": -0.1,
          "faq": 0.0, "unknown": 0.0, "complaint": -0.7, "escalate": 0.0}
REPLIES = {"greeting": "Hello! How can I help?", "pricing": "Basic is $9, Premium $29.",
           "compare": "Premium adds priority support.", "delivery": "2 to 5 days.",
           "refund": "Refunds within 14 days.", "faq": "We are online 24/7.",
           "unknown": "Sorry, I did not get that.", "complaint": "I am sorry to hear that.",
           "escalate": "A person will take over.", "purchase": "Thank you for your order!"}


@dataclass(frozen=True)
class Truth:
    profitable_intent: str = "pricing"
    companion_intent: str = "compare"
    buying_campaign: str = "spring_promo"
    escalation_word: str = "late"


def _label(score: float) -> str:
    return "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"


def synthetic_data(members: int = 2000, days: int = 28, seed: int = 0, *,
                   planted: bool = True, start: datetime | None = None,
                   sessions_per_member: float = 1.5, null_rate: float = 0.10
                   ) -> OptimizerData:
    """Traffic of ``members`` people over ``days`` days (see the module's description)."""
    rng = np.random.default_rng(seed)
    begin = start or datetime(2026, 1, 5, tzinfo=UTC)
    period = days * 86400.0
    campaigns = rng.choice(np.array(["", "spring_promo", "partner_blog"], dtype=object),
                           size=members, p=[0.6, 0.25, 0.15])
    first = rng.uniform(0, period * 0.8, size=members)
    rows: list[tuple[object, ...]] = []
    purchases: list[tuple[object, ...]] = []
    blocks: list[tuple[object, ...]] = []
    next_id = 1
    base_ts = pd.Timestamp(begin).value / 1e9
    for m in range(members):
        member_id = 1000 + m
        count = 1 + rng.poisson(sessions_per_member)
        # Sessions at least two hours apart, so none merge into one.
        gaps = 7200 + rng.exponential(period / (count + 1), size=count)
        offsets = first[m] + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        for at in offsets[offsets < period - 3600]:
            body = [str(x) for x in rng.choice(INTENTS, size=1 + rng.poisson(1.2), p=WEIGHTS)]
            if "pricing" in body and rng.random() < 0.5:
                body.append("compare")
            late = None
            if "complaint" in body:
                late = rng.random() < 0.5
            if planted:
                p_buy = 0.30 if "pricing" in body else 0.06
                if campaigns[m] == "spring_promo":
                    p_buy = min(0.9, 2 * p_buy)
                p_escalate = 0.80 if late else 0.15
            else:
                p_buy, p_escalate = null_rate, 0.3
            buys = rng.random() < p_buy
            escalates = late is not None and rng.random() < p_escalate
            blocks_after = late is not None and not escalates and rng.random() < 0.1
            t = base_ts + at
            trail = [*body, *(["escalate"] if escalates else []),
                     *(["purchase"] if buys else [])]
            for intent in trail:
                if intent == "complaint":
                    text = str(rng.choice(LATE if late else OTHER_COMPLAINTS))
                elif intent == "purchase":
                    text = None
                else:
                    text = str(rng.choice(TEXTS[intent]))
                score = None
                if text is not None:
                    score = float(np.clip(rng.normal(SCORES[intent], 0.25), -1, 1))
                rows.append((next_id, 1, t, member_id, member_id, intent, None if score is None
                             else _label(score), score, True, intent == "escalate", text,
                             REPLIES[intent]))
                if intent == "purchase":
                    purchases.append((1, t + 30, member_id, next_id, "purchased", 29.0, "USD"))
                next_id += 1
                t += rng.uniform(40, 180)
            if blocks_after:
                blocks.append((1, member_id, t + 60))
    frame = pd.DataFrame.from_records(rows, columns=[
        "id", "bot_id", "ts", "member_id", "chat_id", "intent", "sentiment",
        "sentiment_score", "handled", "escalated", "text", "response_text"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True).dt.floor("us")
    conv = pd.DataFrame.from_records(purchases, columns=[
        "bot_id", "ts", "member_id", "interaction_id", "outcome", "value", "currency"])
    conv["ts"] = pd.to_datetime(conv["ts"], unit="s", utc=True).dt.floor("us")
    mem = pd.DataFrame({"bot_id": 1, "member_id": 1000 + np.arange(members),
                        "first_seen": pd.to_datetime(base_ts + first, unit="s", utc=True
                                                     ).floor("us"),
                        "campaign": [c or None for c in campaigns]})
    blk = pd.DataFrame.from_records(blocks, columns=["bot_id", "member_id", "ts"])
    blk["ts"] = pd.to_datetime(blk["ts"], unit="s", utc=True).dt.floor("us")
    return OptimizerData.from_rows(begin, begin + timedelta(days=days), frame, conv, mem, blk)
