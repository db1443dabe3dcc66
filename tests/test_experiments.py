"""Experiments in the bot: assignment, exposures, counting in SQL, the rollup's variant
rows, the ab commands; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiogram import Dispatcher, F
from aiogram.filters import Command
from aiogram.types import Message
from scipy import stats

from bot_analytics import Analytics, UpdateContext
from bot_analytics.cli import main
from bot_analytics.config import ConfigError, ExperimentSettings, parse_settings
from bot_analytics.emulator import TelegramEmulator
from bot_analytics.experiments import ExperimentDef, UnknownExperiment, Variant, bucket
from bot_analytics.experiments import store as exp_store
from bot_analytics.experiments.analysis import analyze
from bot_analytics.kpis.rollup import rollup_period
from bot_analytics.storage import db
from bot_analytics.storage.queries import ASSIGNMENTS, CONVERSIONS

from .conftest import RunningBot, make_settings, new_bot, rows

T0 = datetime(2026, 6, 1, tzinfo=UTC)
PITCH = {"variants": [{"name": "a", "payload": "A says {x}"},
                      {"name": "b", "payload": {"text": "B says {x}", "cents": 2320}}],
         "metric": "conversion", "secondary_metrics": ["revenue_per_member"]}


def make_exp(**overrides: Any) -> ExperimentDef:
    data = {**PITCH, **overrides}
    return ExperimentDef("default", "pitch", ExperimentSettings.model_validate(data))


# -- assignment ------------------------------------------------------------------------------
def test_bucket_is_sha256_of_purpose_salt_and_member() -> None:
    digest = hashlib.sha256(b"variant:pitch:123456789").digest()
    assert bucket("pitch", 123456789) == int.from_bytes(digest[:8], "big") / 2 ** 64


def test_known_assignments_are_pinned() -> None:
    """Changing the hash would move running experiments' members: these must not change."""
    exp = make_exp()
    got = [exp.assign(m) for m in (1, 2, 3, 42, 1000, 123456789, 987654321, 5_000_000_000)]
    # Worked out with hashlib alone: "a" when the bucket is below 1/2.
    assert got == ["b", "a", "a", "b", "b", "b", "b", "b"]
    weighted = make_exp(variants=[{"name": "x", "weight": 1}, {"name": "y", "weight": 3}],
                        salt="spring")
    assert [weighted.assign(m) for m in range(10)] == \
        ["y", "x", "y", "y", "x", "y", "x", "y", "y", "x"]


def test_assignment_is_the_same_in_another_process() -> None:
    members = [7, 99, 31337, 2 ** 40 + 3]
    code = ("from bot_analytics.experiments import ExperimentDef\n"
            "from bot_analytics.config import ExperimentSettings\n"
            f"s = ExperimentSettings.model_validate({PITCH!r})\n"
            "e = ExperimentDef('default', 'pitch', s)\n"
            f"print(','.join(e.assign(m) or '-' for m in {members!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345"}).stdout.strip()
    exp = make_exp()
    assert out.split(",") == [exp.assign(m) for m in members]


def test_assignment_is_uniform_over_100000_members() -> None:
    exp = make_exp(variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1},
                             {"name": "c", "weight": 2}])
    counts = Counter(exp.assign(m) for m in range(1, 100_001))
    observed = [counts["a"], counts["b"], counts["c"]]
    assert stats.chisquare(observed, [25_000, 25_000, 50_000]).pvalue > 0.001
    # The raw bucket over 20 equal bins, on consecutive and on spread-out ids.
    for ids in (range(100_000), range(10 ** 9, 10 ** 9 + 100_000 * 7919, 7919)):
        bins = Counter(int(bucket("s", m) * 20) for m in ids)
        assert stats.chisquare([bins[i] for i in range(20)]).pvalue > 0.001


def test_traffic_share_and_its_increase_keep_members() -> None:
    small, large = make_exp(traffic=0.2), make_exp(traffic=0.6)
    members = range(1, 20_001)
    inside_small = {m for m in members if small.assign(m) is not None}
    inside_large = {m for m in members if large.assign(m) is not None}
    assert 0.18 < len(inside_small) / 20_000 < 0.22
    assert inside_small <= inside_large           # raising the share keeps everyone in
    assert all(small.assign(m) == large.assign(m) for m in inside_small)
    outside = next(m for m in members if m not in inside_small)
    served = small.choose(outside, T0)
    assert served.name == "a" and not served.counted


def test_start_stop_and_winner() -> None:
    exp = make_exp(start=T0, stop=T0 + timedelta(days=10), winner="b")
    member = next(m for m in range(1, 100) if exp.assign(m) == "a")
    before = exp.choose(member, T0 - timedelta(seconds=1))
    assert (before.name, before.counted) == ("a", False)
    during = exp.choose(member, T0)
    assert (during.name, during.counted) == ("a", True)
    after = exp.choose(member, T0 + timedelta(days=10))
    assert (after.name, after.counted) == ("b", False)
    assert exp.status(T0 - timedelta(1)) == "scheduled" and exp.status(T0) == "running"
    stopped = ExperimentDef("default", "pitch", make_exp().settings, stopped_at=T0)
    assert stopped.choose(member, T0).name == "a"    # no winner given: the control


def test_render() -> None:
    assert Variant("e", "a", "Only {price}/month").render(price="$23.20") == \
        "Only $23.20/month"
    assert Variant("e", "b", {"text": "Hi {name}"}).render(name="Ann") == "Hi Ann"
    with pytest.raises(ValueError, match="needs a value for 'price'"):
        Variant("e", "a", "Only {price}").render()
    with pytest.raises(ValueError, match="no text payload"):
        Variant("e", "a", {"cents": 1}).render()


@pytest.mark.parametrize(("change", "message"), [
    ({"control": "z"}, "control 'z' is not a variant (a, b)"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, "variant names must be unique: a"),
    ({"variants": [{"name": "a"}]}, "at least 2"),
    ({"metric": "clicks"}, "unknown metric 'clicks'"),
    ({"traffic": 1.5}, "experiments.pitch.traffic"),
    ({"start": "2026-06-02", "stop": "2026-06-01"}, "must be after start"),
    ({"variants": [{"name": "a b"}, {"name": "c"}]}, "use letters, digits"),
])
def test_config_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"experiments\.pitch") as info:
        parse_settings({"experiments": {"pitch": {**PITCH, **change}}}, "config.yaml")
    assert message in str(info.value)


# -- in the bot -------------------------------------------------------------------------------
def pitch_bot() -> Dispatcher:
    dp = Dispatcher()

    @dp.message(Command("buy"))
    async def buy(message: Message, analytics: UpdateContext) -> None:
        analytics.track_conversion("purchased", value=10.0, currency="USD")
        await message.answer("bought")

    @dp.message(F.text == "nope")
    async def nope(message: Message, analytics: UpdateContext) -> None:
        await analytics.variant("no_such_experiment")

    @dp.message()
    async def offer(message: Message, analytics: UpdateContext) -> None:
        v = await analytics.variant("pitch")
        await message.answer(v.render(x="hello"))

    return dp


async def test_variants_are_served_recorded_and_analysed(
        database_url: str, tmp_path: Path, emulator: TelegramEmulator) -> None:
    token = emulator.add_bot()
    settings = make_settings(database_url, tmp_path, experiments={"pitch": PITCH})
    analytics = Analytics(settings)
    dp = pitch_bot()
    errors: list[BaseException] = []

    @dp.errors()
    async def on_error(event: Any) -> bool:
        errors.append(event.exception)
        return True

    analytics.setup(dp)
    exp = analytics.experiments[("default", "pitch")]
    people = [emulator.user(f"P{i}", user_id=1000 + i) for i in range(16)]
    buyers_after = {p.id for p in people[1:16:2]}
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        sent = 0
        people[0].send("/buy")  # before ever seeing the offer: not counted
        sent += 1
        await running.settle(sent)
        for p in people:
            for _ in range(2):
                p.send("what do you offer?")
                sent += 1
        await running.settle(sent)
        for p in people:
            if p.id in buyers_after:
                p.send("/buy")
                sent += 1
        people[1].send("nope")
        sent += 1
        await running.settle(sent)
        await emulator.wait_for(lambda: len(errors) == 1)
    await analytics.close()
    # The bot's own mistake (an unknown experiment) reaches the bot's error handler.
    assert isinstance(errors[0], UnknownExperiment)
    assert "no experiment 'no_such_experiment'" in str(errors[0])

    expected = {p.id: exp.assign(p.id) for p in people}
    for p in people:
        texts = [m["text"] for m in p.received() if "says" in m.get("text", "")]
        word = "A" if expected[p.id] == "a" else "B"
        assert texts == [f"{word} says hello"] * 2
    got = {r.member_id: (r.variant, r.exposures) for r in rows(
        database_url, "SELECT member_id, variant, exposures FROM experiment_assignments")}
    assert got == {m: (v, 2) for m, v in expected.items()}

    report = analyze(analytics.engine, "pitch", now=datetime.now(UTC) + timedelta(seconds=1))
    members = Counter(expected.values())
    converted = Counter(expected[m] for m in buyers_after)
    by_name = {v.name: v for v in report.primary.variants}
    for name in ("a", "b"):
        assert by_name[name].members == members[name]
        assert by_name[name].conversions == converted[name]   # not the buyer before
        assert by_name[name].revenue_per_member == pytest.approx(
            10.0 * converted[name] / members[name])
    assert report.exposures == {n: 2 * members[n] for n in ("a", "b")}
    assert set(report.secondary) == {"revenue_per_member"}
    # Every update, every tracked purchase (the early one too) and every exposure.
    assert analytics.health()["written"] == sent + 1 + len(buyers_after) + 2 * len(people)


def test_run_ab_test_and_analyze_ab_test(database_url: str, tmp_path: Path) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path))
    test_id = analytics.run_ab_test("acme", {"name": "onboarding", **PITCH})
    with pytest.raises(ValueError, match="already exists"):
        analytics.run_ab_test("acme", {"name": "onboarding", **PITCH})
    with pytest.raises(ConfigError, match="unknown metric"):
        analytics.run_ab_test("acme", {"name": "x", **PITCH, "metric": "likes"})
    engine = analytics.engine
    exp = analytics.experiments[("acme", "onboarding")]
    rng = random.Random(5)
    members = list(range(1, 401))
    with engine.begin() as conn:
        conn.execute(sa.insert(ASSIGNMENTS), [{
            "tenant_id": "acme", "experiment": "onboarding", "member_id": m, "bot_id": 1,
            "variant": exp.assign(m), "first_exposed_at": T0, "last_exposed_at": T0,
            "exposures": 1} for m in members])
        buyers = [m for m in members if rng.random() < (0.2 if exp.assign(m) == "a" else 0.5)]
        conn.execute(sa.insert(CONVERSIONS), [conversion("acme", m, T0 + timedelta(hours=1))
                                              for m in buyers])
    result = analytics.analyze_ab_test(test_id)
    n = Counter(exp.assign(m) for m in members)
    c = Counter(exp.assign(m) for m in buyers)
    assert result.control_rate == pytest.approx(c["a"] / n["a"])
    assert result.variant_rate == pytest.approx(c["b"] / n["b"])
    assert result.improvement == pytest.approx((c["b"] / n["b"]) / (c["a"] / n["a"]) - 1)
    assert result.winner == "b" and result.decision == "winner"
    assert "Roll out 'b'" in result.recommended_action
    analytics.engine.dispose()


def conversion(tenant: str, member: int, ts: datetime, outcome: str = "purchased",
               value: float = 10.0, bot: int = 1) -> dict[str, Any]:
    return {"tenant_id": tenant, "bot_id": bot, "ts": ts, "member_id": member,
            "chat_id": member, "interaction_id": None, "outcome": outcome, "value": value,
            "amount_minor": int(value * 100), "currency": "USD", "external_id": None,
            "source": "api", "intent": None, "intent_score": None, "trigger_text": None,
            "bot_message": None, "checkout_completed": outcome == "purchased",
            "pages_visited": None, "time_to_conversion_s": None, "details": None}


# -- counting in SQL against counting in Python ---------------------------------------------------
def random_experiment(engine: sa.Engine, seed: int) -> tuple[ExperimentDef, list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
    exp = make_exp()
    rng = random.Random(seed)
    assignments: list[dict[str, Any]] = []
    conversions: list[dict[str, Any]] = []
    for m in range(1, 601):
        first = T0 + timedelta(minutes=rng.uniform(0, 10 * 24 * 60))
        bot = rng.choice([1, 2])
        assignments.append({"tenant_id": "default", "experiment": "pitch", "member_id": m,
                            "bot_id": bot, "variant": exp.assign(m), "first_exposed_at": first,
                            "last_exposed_at": first, "exposures": rng.randint(1, 4)})
        for _ in range(rng.choice([0, 0, 0, 1, 2, 3])):
            # Before and after the first exposure, some past the end of the window.
            ts = first + timedelta(hours=rng.uniform(-48, 24 * 6))
            outcome = rng.choice(["purchased", "purchased", "resolved"])
            conversions.append(conversion("default", m, ts, outcome,
                                          round(rng.uniform(1, 50), 2), bot))
    # Noise that must not count: another tenant, another experiment.
    assignments.append({**assignments[0], "tenant_id": "other"})
    assignments.append({**assignments[1], "experiment": "other_test"})
    conversions.append(conversion("other", 1, T0 + timedelta(days=1)))
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(ASSIGNMENTS), assignments)
        conn.execute(sa.insert(CONVERSIONS), conversions)
        exp_store.save_definition(conn, exp, T0)
    return exp, assignments, conversions


Totals = dict[str, tuple[int, int, float, float]]
Daily = dict[str, dict[date, tuple[int, int]]]


def python_counts(assignments: list[dict[str, Any]], conversions: list[dict[str, Any]],
                  end: datetime, outcome: str, bot: int | None = None
                  ) -> tuple[Totals, Daily]:
    mine = {a["member_id"]: a for a in assignments
            if a["tenant_id"] == "default" and a["experiment"] == "pitch"
            and a["first_exposed_at"] < end and (bot is None or a["bot_id"] == bot)}
    value: dict[int, float] = {}
    first_conv: dict[int, datetime] = {}
    for c in conversions:
        a = mine.get(c["member_id"])
        if (c["tenant_id"] != "default" or a is None or c["outcome"] != outcome
                or not a["first_exposed_at"] <= c["ts"] < end):
            continue
        value[c["member_id"]] = value.get(c["member_id"], 0.0) + c["value"]
        first_conv[c["member_id"]] = min(first_conv.get(c["member_id"], c["ts"]), c["ts"])
    totals: Totals = {}
    daily: Daily = {}
    days = sorted({a["first_exposed_at"].date() for a in mine.values()})
    all_days = [days[0] + timedelta(d) for d in range(((end - timedelta(microseconds=1)).date()
                                                       - days[0]).days + 1)]
    for v in ("a", "b"):
        ms = [m for m, a in mine.items() if a["variant"] == v]
        conv = [m for m in ms if m in value]
        totals[v] = (len(ms), len(conv), sum(value[m] for m in conv),
                     sum(value[m] ** 2 for m in conv))
        daily[v] = {d: (sum(1 for m in ms if mine[m]["first_exposed_at"].date() <= d),
                        sum(1 for m in conv if first_conv[m].date() <= d)) for d in all_days}
    return totals, daily


@pytest.mark.parametrize("outcome", ["purchased", "resolved"])
def test_sql_counts_match_python(database_url: str, outcome: str) -> None:
    engine = db.create_db_engine(database_url)
    exp, assignments, conversions = random_experiment(engine, seed=11)
    end = T0 + timedelta(days=8, hours=5)
    with engine.connect() as conn:
        counts = exp_store.count(conn, exp, end, outcome=outcome)
    totals, daily = python_counts(assignments, conversions, end, outcome)
    for v in ("a", "b"):
        s = counts.totals[v]
        members, converted, vsum, vsq = totals[v]
        assert (s.members, s.conversions) == (members, converted)
        assert s.value_sum == pytest.approx(vsum) and s.value_sum_squares == pytest.approx(vsq)
        series = [(x.members, x.conversions) for x in counts.daily[v]]
        assert series == [daily[v][d] for d in counts.days]
    assert counts.days[0] == T0.date() and counts.days[-1] == date(2026, 6, 9)
    assert counts.exposures["a"] == sum(a["exposures"] for a in assignments
                                        if a["tenant_id"] == "default"
                                        and a["experiment"] == "pitch"
                                        and a["variant"] == "a" and a["first_exposed_at"] < end)
    engine.dispose()


def test_rollup_writes_variant_rows(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    _, assignments, conversions = random_experiment(engine, seed=12)
    # The rollup runs for bots with activity in the period: conversions give both bots some.
    day = T0 + timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(sa.insert(CONVERSIONS), [conversion("default", 10_000 + b, day, bot=b)
                                              for b in (1, 2)])
        conversions += [conversion("default", 10_000 + b, day, bot=b) for b in (1, 2)]
    rollup_period(engine, "daily", day)
    got = {(r.bot_id, r.metric_type, r.dimension): (r.metric_value, r.sample_size)
           for r in rows(database_url, "SELECT bot_id, metric_type, dimension, metric_value, "
                                       "sample_size FROM kpi_metrics "
                                       "WHERE metric_category = 'experiments'")}
    end = day + timedelta(days=1)
    for bot in (1, 2):
        totals, _ = python_counts(assignments, conversions, end, "purchased", bot)
        for v in ("a", "b"):
            n, c, vsum, _ = totals[v]
            dim = f"variant=pitch:{v}"
            assert got[(bot, "members", dim)] == (n, n)
            assert got[(bot, "conversion_rate", dim)][0] == pytest.approx(c / n)
            assert got[(bot, "revenue_per_member", dim)][0] == pytest.approx(vsum / n)
    assert len(got) == 2 * 2 * 3
    engine.dispose()


# -- commands ----------------------------------------------------------------------------------
def write_config(tmp_path: Path, url: str) -> Path:
    f = tmp_path / "config.yaml"
    f.write_text(f"database:\n  url: '{url}'\nwriter:\n  spool_path: '{tmp_path / 's'}'\n")
    return f


async def test_ab_commands(database_url: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    cfg = write_config(tmp_path, database_url)

    def run(*args: str) -> int:
        return main(["-c", str(cfg), *args])

    assert await asyncio.to_thread(run, "ab", "list") == 2
    assert "bot-analytics db upgrade" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "db", "upgrade") == 0
    assert await asyncio.to_thread(run, "ab", "create", "welcome", "--variant", "short",
                                   "--variant", "long:3", "--payload", "long=Hello {name}!",
                                   "--mde", "0.2") == 0
    assert "created experiment welcome (id 1" in capsys.readouterr().out
    assert await asyncio.to_thread(run, "ab", "create", "welcome", "--variant", "x",
                                   "--variant", "y") == 2
    assert "already exists" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "ab", "create", "w2", "--variant", "x:heavy",
                                   "--variant", "y") == 2
    assert "the weight after ':' must be a number" in capsys.readouterr().err

    # A running bot serves it, with the payload given on the command line.
    analytics = Analytics(make_settings(database_url, tmp_path))
    await analytics.writer.run_in_worker(analytics._prepare_store)
    member = next(m for m in range(1, 100)
                  if analytics.experiments[("default", "welcome")].assign(m) == "long")
    v = await analytics.variant("welcome", member_id=member, bot_id=5)
    assert (v.name, v.render(name="Ann"), v.counted) == ("long", "Hello Ann!", True)
    await analytics.flush()

    assert await asyncio.to_thread(run, "ab", "list") == 0
    out = capsys.readouterr().out
    assert "welcome" in out and "running" in out and "no winner yet" in out
    assert await asyncio.to_thread(run, "ab", "show", "welcome", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "welcome" and data["status"] == "running"
    assert {v["name"]: v["members"] for v in data["primary"]["variants"]} == \
        {"short": 0, "long": 1}
    assert data["winner"] is None and data["recommended_action"]
    assert await asyncio.to_thread(run, "ab", "show", "welcom") == 1
    assert "no experiment named 'welcom'; known: welcome" in capsys.readouterr().err

    assert await asyncio.to_thread(run, "ab", "stop", "welcome", "--winner", "nope") == 2
    assert "is not a variant of welcome" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "ab", "stop", "welcome", "--winner", "short") == 0
    assert "everyone gets 'short'" in capsys.readouterr().out
    assert await asyncio.to_thread(run, "ab", "stop", "welcome") == 2
    # The bot picks the stop up and serves the winner to everyone, uncounted.
    await analytics.writer.run_in_worker(analytics._refresh_experiments)
    v = await analytics.variant("welcome", member_id=member, bot_id=5)
    assert (v.name, v.counted) == ("short", False)
    assert await asyncio.to_thread(run, "ab", "show", "welcome") == 0
    out = capsys.readouterr().out
    assert "stopped" in out and "everyone now gets 'short'" in out
    await analytics.close()
