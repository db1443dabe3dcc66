"""KPI rollups against an independent computation (pandas, from the raw tables)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from bot_analytics.currency import to_minor
from bot_analytics.kpis.periods import period_end, period_start, periods_between
from bot_analytics.kpis.rollup import rollup_period, rollup_range
from bot_analytics.storage import db
from bot_analytics.storage.queries import BatchStore

TIMEOUT = timedelta(minutes=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST = datetime(2025, 12, 30, 20, 0, tzinfo=UTC)   # a Tuesday; the ISO week spans New Year
LAST = datetime(2026, 1, 3, 6, 0, tzinfo=UTC)
INTENTS = ["greeting", "pricing", "unknown", "escalate", "abandoned", "purchase", "/start"]


def make_rows(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    interactions: list[dict[str, Any]] = []
    conversions: list[dict[str, Any]] = []
    update_id = 0
    for bot, currencies in ((1, ["USD"]), (2, ["USD", "EUR"])):
        for member in range(1, 26):
            t = FIRST + timedelta(minutes=rng.uniform(0, 60 * 70))
            chats = [member, member, -100 - member % 3]
            while t < LAST:
                chat = rng.choice(chats)
                for _ in range(rng.randint(1, 5)):
                    update_id += 1
                    kind = rng.choices(["message", "callback_query", "pre_checkout_query"],
                                       [8, 2, 1])[0]
                    handled = rng.random() < 0.9
                    replied = handled and rng.random() < 0.8
                    scored = kind == "message" and rng.random() < 0.7
                    score = round(rng.uniform(-1, 1), 4) if scored else None
                    intent = rng.choice(INTENTS)
                    interactions.append({
                        "tenant_id": "t", "bot_id": bot, "update_id": update_id,
                        "event_type": kind, "ts": t,
                        "chat_id": None if kind == "pre_checkout_query" else chat,
                        "chat_type": "private" if chat > 0 else "group", "member_id": member,
                        "language_code": "en", "text": "x", "command": None,
                        "intent": intent, "intent_confidence": 1.0,
                        "sentiment": None if score is None else
                        ("positive" if score >= 0.05 else
                         "negative" if score <= -0.05 else "neutral"),
                        "sentiment_score": score, "handled": handled,
                        "error": "Boom" if handled and rng.random() < 0.05 else None,
                        "handler_time_ms": 5.0,
                        "response_text": "ok" if replied else None,
                        "response_time_ms": round(rng.uniform(1, 900), 3) if replied else None,
                        "reply_count": 1 if replied else 0, "session_id": None,
                        "escalated": intent == "escalate" or rng.random() < 0.03,
                        "monetization_event": False})
                    if rng.random() < 0.08:
                        outcome = rng.choice(["purchased", "purchased", "resolved", "visited"])
                        currency = rng.choice(currencies) if outcome == "purchased" else None
                        value = round(rng.uniform(1, 50), 2) if currency else 0.0
                        conversions.append({
                            "tenant_id": "t", "bot_id": bot, "member_id": member,
                            "chat_id": chat, "ts": t + timedelta(seconds=rng.randint(0, 90)),
                            "outcome": outcome, "value": value,
                            "amount_minor": to_minor(value, currency) if currency else 0,
                            "currency": currency, "external_id": None, "source": "api",
                            "checkout_completed": outcome == "purchased", "details": None})
                    # Gaps that hit the session timeout exactly, just over it, and well
                    # inside it.
                    t += rng.choice([TIMEOUT, TIMEOUT + timedelta(microseconds=1),
                                     timedelta(minutes=rng.uniform(0.5, 20))])
                t += timedelta(hours=rng.uniform(0.6, 16))
    return interactions, conversions


def make_members() -> list[dict[str, Any]]:
    """Every member of both bots, a third of them from each of two campaigns."""
    return [{"tenant_id": "t", "bot_id": bot, "member_id": member, "first_seen": FIRST,
             "last_seen": LAST, "language_code": "en",
             "campaign": [None, "spring", "blog"][member % 3], "blocked": False,
             "opted_out": False}
            for bot in (1, 2) for member in range(1, 26)]


def expected_kpis(inter: pd.DataFrame, conv: pd.DataFrame, kind: str, start: datetime,
                  tenant: str, bot: int, members: pd.DataFrame | None = None
                  ) -> dict[tuple[str, str | None], tuple[float, int]]:
    """KPIS.md computed the plain way, one definition at a time."""
    end = period_end(start, kind)
    df = inter[(inter.tenant_id == tenant) & (inter.bot_id == bot)].copy()
    df["chat"] = df.chat_id.fillna(df.member_id).astype("int64")
    df = df.sort_values(["member_id", "chat", "ts", "id"])
    gap = df.groupby(["member_id", "chat"]).ts.diff()
    df["new"] = gap.isna() | (gap > pd.Timedelta(TIMEOUT))
    df["sess"] = df["new"].cumsum()
    sessions = df.groupby("sess").agg(
        start=("ts", "first"), n=("id", "size"), escalated=("escalated", "any"),
        last_handled=("handled", "last"), last_intent=("intent", "last"),
        ids=("id", lambda s: set(s)))
    sessions = sessions[(sessions.start >= start) & (sessions.start < end)]
    p = df[(df.ts >= start) & (df.ts < end)]
    c = conv[(conv.tenant_id == tenant) & (conv.bot_id == bot)]
    out: dict[tuple[str, str | None], tuple[float, int]] = {}

    def put(metric: str, value: float, n: int, dim: str | None = None) -> None:
        out[(metric, dim)] = (value, n)

    def share(metric: str, num: int, den: int) -> None:
        if den:
            put(metric, num / den, den)

    ns = len(sessions)
    active = p.member_id.nunique()
    put("interactions", len(p), len(p))
    put("sessions", ns, ns)
    put("active_users", active, active)
    first_seen = df.groupby("member_id").ts.min()
    new = int(((first_seen >= start) & (first_seen < end)).sum())
    put("new_users", new, new)
    share("retention_rate", active, int((first_seen < end).sum()))
    if kind == "daily":   # every day D + N of this data has long ended
        cohort = set(first_seen[(first_seen >= start) & (first_seen < end)].index)
        for n in (1, 7, 30):
            lo, hi = start + timedelta(days=n), end + timedelta(days=n)
            back = set(df[(df.ts >= lo) & (df.ts < hi)].member_id)
            share(f"retention_d{n}", len(cohort & back), len(cohort))
    if kind == "monthly" and active:
        days = (end - start).days
        dau = p.groupby(p.ts.dt.floor("D")).member_id.nunique()
        put("stickiness", dau.sum() / days / active, active)
    share("completion_rate", int((sessions.last_handled.astype(bool)
                                  & ~sessions.last_intent.isin(["unknown", "abandoned"]))
                                 .sum()), ns)
    share("bounce_rate", int((sessions.n == 1).sum()), ns)
    if ns:
        put("interactions_per_session", len(p) / ns, ns)
    share("containment_rate", ns - int(sessions.escalated.sum()), ns)
    trig = c[c.interaction_id.notna()]
    resolving = set(trig[trig.outcome.isin(["purchased", "resolved"])].interaction_id)
    buying = set(trig[trig.outcome == "purchased"].interaction_id)
    share("resolution_rate", int(sessions.ids.apply(lambda s: bool(s & resolving)).sum()), ns)
    share("conversion_rate", int(sessions.ids.apply(lambda s: bool(s & buying)).sum()), ns)
    share("fallback_rate", int(((p.intent == "unknown") | ~p.handled.astype(bool)).sum()),
          len(p))
    share("error_rate", int(p.error.notna().sum()), len(p))
    rt = p.response_time_ms.dropna().sort_values().tolist()
    if rt:
        put("avg_handling_time_ms", sum(rt) / len(rt), len(rt))
        put("response_time_p50_ms", rt[math.ceil(0.5 * len(rt)) - 1], len(rt))
        put("response_time_p95_ms", rt[math.ceil(0.95 * len(rt)) - 1], len(rt))
    sc = p.sentiment_score.dropna()
    if len(sc):
        put("sentiment_avg", sc.mean(), len(sc))
    labelled = p.sentiment.dropna()
    for label in ("positive", "neutral", "negative"):
        share(f"sentiment_{label}_rate", int((labelled == label).sum()), len(labelled))
    buys = c[(c.outcome == "purchased") & (c.ts >= start) & (c.ts < end)]
    put("conversions", len(buys), len(buys))
    currencies = sorted(buys.currency.dropna().unique())
    if len(currencies) == 1:
        revenue = buys.amount_minor.sum() / 100
        put("revenue", revenue, len(buys))
        if active:
            put("arpu", revenue / active, active)
        for intent, g in buys.groupby(buys.intent.fillna("(none)")):
            put("revenue_by_intent", g.amount_minor.sum() / 100, len(g), f"intent={intent}")
    else:
        for cur, g in buys.groupby("currency"):
            put("revenue", g.amount_minor.sum() / 100, len(g), f"currency={cur}")
        for (intent, cur), g in buys.groupby([buys.intent.fillna("(none)"), "currency"]):
            put("revenue_by_intent", g.amount_minor.sum() / 100, len(g),
                f"intent={intent};currency={cur}")
    if members is not None:
        mine = members[(members.tenant_id == tenant) & (members.bot_id == bot)]
        campaign = buys.member_id.map(mine.set_index("member_id").campaign).fillna("(none)")
        for name, g in buys.groupby(campaign):
            put("conversions", len(g), len(g), f"campaign={name}")
            if len(currencies) == 1:
                put("revenue", g.amount_minor.sum() / 100, len(g), f"campaign={name}")
            else:
                for cur, h in g.groupby("currency"):
                    put("revenue", h.amount_minor.sum() / 100, len(h),
                        f"campaign={name};currency={cur}")
    return out


@pytest.fixture
def loaded(database_url: str) -> tuple[sa.Engine, pd.DataFrame, pd.DataFrame]:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    interactions, conversions = make_rows(11)
    store = BatchStore(engine, TIMEOUT)
    for i in range(0, len(interactions), 400):
        store.write(interactions[i:i + 400], [], [], [])
    store.write([], make_members(), [], conversions)
    inter = pd.read_sql("SELECT * FROM interactions", engine)
    conv = pd.read_sql("SELECT * FROM conversions", engine)
    for frame in (inter, conv):
        frame["ts"] = pd.to_datetime(frame.ts, utc=True, format="ISO8601")
    return engine, inter, conv


@pytest.mark.parametrize("kind", ["hourly", "daily", "weekly", "monthly"])
def test_every_kpi_matches_an_independent_computation(
        loaded: tuple[sa.Engine, pd.DataFrame, pd.DataFrame], kind: str) -> None:
    engine, inter, conv = loaded
    starts = list(periods_between(FIRST, LAST + timedelta(hours=2), kind))
    if kind == "hourly":
        starts = starts[::3]  # a sample of the hours keeps the test quick
    checked = 0
    for start in starts:
        rollup_period(engine, kind, start)
        stored = pd.read_sql(
            sa.text("SELECT * FROM kpi_metrics WHERE aggregation_period = :k"), engine,
            params={"k": kind})
        stored["period_start"] = pd.to_datetime(stored.period_start, utc=True,
                                                format="ISO8601")
        for bot in (1, 2):
            mine = stored[(stored.bot_id == bot) & (stored.period_start == start)]
            got = {(r.metric_type, r.dimension if isinstance(r.dimension, str) else None):
                   (r.metric_value, r.sample_size) for r in mine.itertuples()}
            active = ((inter.bot_id == bot) & (inter.ts >= start)
                      & (inter.ts < period_end(start, kind))).any()
            want = expected_kpis(inter, conv, kind, start, "t", bot,
                                 pd.DataFrame(make_members())) if active or \
                ((conv.bot_id == bot) & (conv.ts >= start)
                 & (conv.ts < period_end(start, kind))).any() else {}
            assert set(got) == set(want), f"{kind} {start} bot {bot}"
            for key, (value, n) in want.items():
                assert got[key][1] == n, (kind, start, bot, key)
                assert got[key][0] == pytest.approx(value, rel=1e-12, abs=1e-12), \
                    (kind, start, bot, key)
                checked += 1
    assert checked > 60  # the comparisons really happened


def test_rollup_is_idempotent_and_empty_periods_have_no_rows(
        loaded: tuple[sa.Engine, pd.DataFrame, pd.DataFrame]) -> None:
    engine = loaded[0]
    day = period_start(FIRST + timedelta(days=1), "daily")
    first = rollup_period(engine, "daily", day)
    second = rollup_period(engine, "daily", day)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM kpi_metrics")).scalar_one()
    assert first == second == n > 0
    empty = datetime(2027, 6, 1, tzinfo=UTC)
    assert rollup_range(engine, "daily", empty, empty + timedelta(days=3)) == 0


def test_period_bounds() -> None:
    t = datetime(2026, 1, 1, 13, 45, tzinfo=UTC)  # a Thursday
    assert period_start(t, "hourly") == datetime(2026, 1, 1, 13, tzinfo=UTC)
    assert period_start(t, "daily") == datetime(2026, 1, 1, tzinfo=UTC)
    assert period_start(t, "weekly") == datetime(2025, 12, 29, tzinfo=UTC)  # ISO Monday
    assert period_start(t, "monthly") == datetime(2026, 1, 1, tzinfo=UTC)
    assert period_end(datetime(2026, 2, 1, tzinfo=UTC), "monthly") == \
        datetime(2026, 3, 1, tzinfo=UTC)
    assert period_end(datetime(2025, 12, 1, tzinfo=UTC), "monthly") == \
        datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="period must be one of"):
        period_start(t, "fortnight")


def _visit(update_id: int, member: int, ts: datetime) -> dict[str, Any]:
    return {"tenant_id": "t", "bot_id": 1, "update_id": update_id, "event_type": "message",
            "ts": ts, "chat_id": member, "chat_type": "private", "member_id": member,
            "language_code": "en", "text": "hi", "command": None, "intent": "greeting",
            "intent_confidence": 1.0, "sentiment": None, "sentiment_score": None,
            "handled": True, "error": None, "handler_time_ms": 1.0, "response_text": "hi",
            "response_time_ms": 2.0, "reply_count": 1, "session_id": None,
            "escalated": False, "monetization_event": False}


def test_cohort_retention_is_stored_on_the_cohort_day_once_known(database_url: str) -> None:
    """Four members first seen on day D; two come back on D+1, one on D+7, none on D+30.
    Member 5 was seen before D, so is not in D's cohort."""
    from bot_analytics.kpis.rollup import compute_period

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    d = datetime(2026, 3, 10, tzinfo=UTC)
    visits = [(m, d + timedelta(hours=m)) for m in (1, 2, 3, 4)]
    visits += [(5, d - timedelta(days=3)), (5, d + timedelta(hours=9)),
               (1, d + timedelta(days=1, hours=2)), (2, d + timedelta(days=1, hours=5)),
               (5, d + timedelta(days=1, hours=6)), (1, d + timedelta(days=7, hours=1))]
    BatchStore(engine, TIMEOUT).write([_visit(i, m, ts) for i, (m, ts) in enumerate(visits)],
                                      [], [], [])

    def retention(now: datetime) -> dict[str, float]:
        return {k.metric: k.value for k in compute_period(engine, "t", 1, "daily", d, now=now)
                if k.metric.startswith("retention_d")}

    assert retention(d + timedelta(days=1, hours=23)) == {}       # day D+1 not over yet
    assert retention(d + timedelta(days=2)) == {"retention_d1": 0.5}
    assert retention(d + timedelta(days=8)) == {"retention_d1": 0.5, "retention_d7": 0.25}
    assert retention(d + timedelta(days=31)) == {"retention_d1": 0.5, "retention_d7": 0.25,
                                                 "retention_d30": 0.0}
    # The scheduled rollup of day D+7 (just ended) fills in D's d7 without touching D's
    # other rows.
    rollup_period(engine, "daily", d, now=d + timedelta(days=2))
    rollup_period(engine, "daily", d + timedelta(days=7), now=d + timedelta(days=8))
    with engine.connect() as conn:
        stored = {r.metric_type: (r.metric_value, r.sample_size) for r in conn.execute(
            sa.text("SELECT metric_type, metric_value, sample_size FROM kpi_metrics "
                    "WHERE aggregation_period = 'daily' AND metric_type LIKE 'retention_d%' "
                    "AND period_start = :d"), {"d": d if engine.dialect.name != "sqlite"
                                               else d.strftime("%Y-%m-%d %H:%M:%S.%f")})}
        interactions = conn.execute(sa.text(
            "SELECT count(*) FROM kpi_metrics WHERE metric_type = 'interactions'")).scalar()
    assert stored == {"retention_d1": (0.5, 4), "retention_d7": (0.25, 4)}
    assert interactions == 2          # D's own rows are still there, and D+7's
    engine.dispose()


def test_stickiness_is_mean_daily_actives_over_monthly_actives(database_url: str) -> None:
    from bot_analytics.kpis.rollup import compute_period

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    month = datetime(2026, 2, 1, tzinfo=UTC)   # 28 days
    visits = [(1, month + timedelta(days=day, hours=1)) for day in range(28)]  # every day
    visits += [(2, month + timedelta(days=3)), (2, month + timedelta(days=3, hours=2)),
               (3, month + timedelta(days=5))]
    BatchStore(engine, TIMEOUT).write([_visit(i, m, ts) for i, (m, ts) in enumerate(visits)],
                                      [], [], [])
    kpis = {k.metric: k for k in compute_period(engine, "t", 1, "monthly", month,
                                                now=month + timedelta(days=40))}
    # Daily actives: 1 on 26 days, 2 on days 3 and 5 (members 2 and 3): 30 over 28 days.
    assert kpis["stickiness"].value == pytest.approx((26 + 2 * 2) / 28 / 3)
    assert kpis["stickiness"].sample_size == 3
    # During the month only the days begun so far count: 11 days, 13 daily actives.
    partial = {k.metric: k for k in compute_period(engine, "t", 1, "monthly", month,
                                                   now=month + timedelta(days=10, hours=12))}
    assert partial["stickiness"].value == pytest.approx(13 / 11 / 3)
    engine.dispose()


def test_sessions_are_followed_many_hours_past_the_period(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Member 1 chats every 20 minutes from 23:00 on day D to 09:00 on D+1: one session
    of D that ends in 'unknown' and whose 08:00 message led to a resolution. Member 2
    says hello once at noon on D; member 3 at 23:50 and again at 00:10."""
    from bot_analytics.kpis import data
    from bot_analytics.kpis.rollup import compute_period

    monkeypatch.setattr(data, "_SLICE", 1)  # open sessions' members asked for one by one

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    d = datetime(2026, 4, 20, tzinfo=UTC)
    chat = [d + timedelta(hours=23, minutes=20 * i) for i in range(31)]
    rows = [_visit(i, 1, ts) for i, ts in enumerate(chat)]
    rows[-1]["intent"] = "unknown"
    rows.append({**_visit(100, 2, d + timedelta(hours=12)), "intent": None})  # no intent
    rows += [_visit(101, 3, d + timedelta(hours=23, minutes=50)),
             _visit(102, 3, d + timedelta(hours=24, minutes=10))]
    store = BatchStore(engine, TIMEOUT)
    store.write(rows, [], [], [])
    store.write([], [], [], [{
        "tenant_id": "t", "bot_id": 1, "member_id": 1, "chat_id": 1,
        "ts": d + timedelta(days=1, hours=8, minutes=5), "outcome": "resolved", "value": 0.0,
        "amount_minor": 0, "currency": None, "external_id": None, "source": "api",
        "checkout_completed": False, "details": None}])
    assert chat[-1] - chat[0] == timedelta(hours=10)
    kpis = {k.metric: k for k in compute_period(engine, "t", 1, "daily", d,
                                                now=d + timedelta(days=3))}
    assert (kpis["sessions"].value, kpis["interactions"].value) == (3, 5)
    assert kpis["bounce_rate"].value == pytest.approx(1 / 3)      # member 2's hello
    assert kpis["completion_rate"].value == pytest.approx(2 / 3)  # 1's ends in unknown
    assert kpis["resolution_rate"].value == pytest.approx(1 / 3)  # ... and resolved
    assert kpis["interactions_per_session"].value == pytest.approx(5 / 3)
    # The next day holds the rest of member 1's messages but no session of its own.
    after = {k.metric: k for k in compute_period(engine, "t", 1, "daily",
                                                 d + timedelta(days=1),
                                                 now=d + timedelta(days=3))}
    assert (after["sessions"].value, after["interactions"].value) == (0, 29)
    assert "bounce_rate" not in after                 # no sessions: no rate (KPIS.md)
    engine.dispose()


def test_first_seen_and_active_bots_against_the_raw_rows(database_url: str) -> None:
    """Three bots of one tenant share member ids, each member with rows on several days
    in no particular order: each bot's first-seen table equals a pandas minimum over its
    rows, and only bots with a row inside a period are active in it, whatever lies
    just before or exactly at its end."""
    from bot_analytics.kpis.data import first_seen, tenants_and_bots

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    rng = random.Random(7)
    d = datetime(2026, 5, 4, tzinfo=UTC)
    rows = []
    for n in range(600):
        row = _visit(n, rng.randint(1, 40), d + timedelta(
            days=rng.randint(-20, 5), seconds=rng.randint(0, 86_399),
            microseconds=rng.randint(0, 999_999)))
        rows.append({**row, "bot_id": rng.choice([1, 2])})
    # Bot 3 has rows only just before day D and exactly at its end.
    rows += [{**_visit(1000, 5, d - timedelta(microseconds=1)), "bot_id": 3},
             {**_visit(1001, 6, d + timedelta(days=1)), "bot_id": 3}]
    BatchStore(engine, TIMEOUT).write(rows, [], [], [])
    frame = pd.DataFrame(rows)
    with engine.connect() as conn:
        for bot in (1, 2, 3):
            seen = first_seen(conn, "t", bot)
            expected = frame[frame.bot_id == bot].groupby("member_id").ts.min()
            got = pd.Series([EPOCH + timedelta(microseconds=int(us)) for us in seen.first],
                            index=seen.members)
            assert got.sort_index().to_dict() == expected.to_dict()
            assert seen.known_before(d) == int((expected < d).sum())
            assert seen.new_in(d, d + timedelta(days=1)) == set(
                expected[(expected >= d) & (expected < d + timedelta(days=1))].index)
        assert list(tenants_and_bots(conn, d, d + timedelta(days=1))) == [("t", 1), ("t", 2)]
        assert list(tenants_and_bots(conn, d + timedelta(days=1), d + timedelta(days=2))
                    ) == [("t", 1), ("t", 2), ("t", 3)]
        assert list(tenants_and_bots(conn, d + timedelta(days=6), d + timedelta(days=7))
                    ) == []
    engine.dispose()
