"""The CSAT survey through a real dispatcher and the offline Telegram; CSAT KPIs and CSAT
as an experiment metric; on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from aiogram import Dispatcher, F
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from scipy import stats

from bot_analytics import Analytics, UpdateContext
from bot_analytics.config import ConfigError, ExperimentSettings, parse_settings
from bot_analytics.emulator import SimUser, TelegramEmulator
from bot_analytics.experiments import ExperimentDef
from bot_analytics.experiments import store as exp_store
from bot_analytics.experiments.analysis import analyze, format_report
from bot_analytics.feedback import parse_answer
from bot_analytics.kpis.rollup import compute_period
from bot_analytics.storage import db
from bot_analytics.storage.queries import ASSIGNMENTS, FEEDBACK

from .conftest import RunningBot, make_settings, new_bot, rows

QUESTION = "How did we do?"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def support_bot(seen_callbacks: list[str]) -> Dispatcher:
    dp = Dispatcher()

    @dp.message(Command("buy"))
    async def buy(message: Message, analytics: UpdateContext) -> None:
        analytics.track_conversion("purchased", value=5.0, currency="USD")
        await message.answer("bought")

    @dp.message(Command("rate"))
    async def rate(message: Message, analytics: UpdateContext) -> None:
        analytics.request_feedback()
        await message.answer("please rate us")

    @dp.message(F.text == "human")
    async def human(message: Message, analytics: UpdateContext) -> None:
        analytics.mark_escalated()
        await message.answer("connecting you")

    @dp.callback_query()
    async def any_callback(query: CallbackQuery) -> None:
        seen_callbacks.append(query.data or "")
        await query.answer()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer("ok")

    return dp


def surveys_of(user: SimUser) -> list[dict[str, Any]]:
    return [m for m in user.received() if m.get("text") == QUESTION]


async def test_surveys_are_sent_answered_and_stored(database_url: str, tmp_path: Path,
                                                    emulator: TelegramEmulator) -> None:
    clock = Clock()
    settings = make_settings(database_url, tmp_path, feedback={
        "enabled": True, "question": QUESTION, "thanks": "Thanks!",
        "buttons": ["1", "2", "3", "4", "5"], "cooldown_hours": 24})
    analytics = Analytics(settings, clock=clock)
    seen: list[str] = []
    dp = support_bot(seen)
    seen_outside: list[str] = []

    async def own_outer(handler: Any, query: CallbackQuery, data: dict[str, Any]) -> Any:
        seen_outside.append(query.data or "")
        return await handler(query, data)

    dp.callback_query.outer_middleware(own_outer)  # the bot's own, registered first
    analytics.setup(dp)
    token = emulator.add_bot()
    ann, ben, cat, dan, gus = (emulator.user(n) for n in ("Ann", "Ben", "Cat", "Dan", "Gus"))
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        sent = 0
        ann.send("/buy")          # a conversion: asked
        ben.send("human")         # a hand-off: asked
        cat.send("/rate")         # on request: asked
        dan.send("hello")         # nothing yet: asked once the session is idle
        gus.send("hello")         # ...but Gus blocks the bot: never asked
        sent += 5
        await running.settle(sent)
        gus.block()
        sent += 1
        await running.settle(sent)
        await emulator.wait_for(lambda: all(surveys_of(u) for u in (ann, ben, cat)))
        assert not surveys_of(dan)

        ann.send("/buy")          # again: the cooldown says no
        sent += 1
        await running.settle(sent)
        clock.now += timedelta(minutes=29)
        assert await analytics.surveys.survey_idle_sessions() == 0    # not idle long enough
        clock.now += timedelta(minutes=2)
        # Dan, and the others whose chats went quiet, are due; only Dan is not cooling down.
        assert await analytics.surveys.survey_idle_sessions() == 1
        await emulator.wait_for(lambda: surveys_of(dan))
        assert not surveys_of(gus)

        for user, rating in ((ann, 4), (ben, 1), (cat, 5), (dan, 5)):
            [survey] = surveys_of(user)
            labels = [b["text"] for row in survey["reply_markup"]["inline_keyboard"]
                      for b in row]
            assert labels == ["1", "2", "3", "4", "5"]
            user.press(survey, next(b["callback_data"] for b in
                                    survey["reply_markup"]["inline_keyboard"][0]
                                    if b["text"] == str(rating)))
            sent += 1
        await running.settle(sent)
        # A later conversion is credited to what Ann did, not to her survey answer.
        analytics.track_conversion(member_id=ann.id, outcome="resolved",
                                   bot_id=int(token.split(":")[0]))
    await analytics.close()

    [resolved] = rows(database_url, "SELECT intent, trigger_text FROM conversions "
                                    "WHERE outcome = 'resolved'")
    assert resolved.trigger_text == "/buy"
    assert seen == []   # the bot's own callback handler never saw a rating
    assert seen_outside == []  # nor did its own middleware
    # Ratings are feedback, not interactions: sessions and bounces stay the bot's own.
    assert rows(database_url, "SELECT count(*) AS n FROM interactions "
                              "WHERE event_type = 'callback_query'")[0].n == 0
    thanks = [c.params.get("text") for c in emulator.calls_of("answerCallbackQuery")]
    assert thanks.count("Thanks!") == 4
    got = {(r.member_id, r.csat_rating, r.trigger) for r in rows(
        database_url, "SELECT member_id, csat_rating, trigger FROM feedback")}
    assert got == {(ann.id, 4, "conversion"), (ben.id, 1, "escalation"),
                   (cat.id, 5, "request"), (dan.id, 5, "session_end")}
    # Surveys are not replies: the updates that triggered them keep their own reply.
    replies = {r.text: r.response_text for r in rows(
        database_url, "SELECT text, response_text FROM interactions WHERE text IS NOT NULL")}
    assert replies["/rate"] == "please rate us" and replies["human"] == "connecting you"
    assert analytics.surveys.counters["asked"] == 4

    # The CSAT KPIs of the day the ratings were given (all at the clock's time), by
    # hand: ratings 4, 1, 5, 5.
    engine = db.create_db_engine(database_url)
    start = clock.now.replace(hour=0, minute=0, second=0, microsecond=0)
    bot_id = int(token.split(":")[0])
    kpis = {k.metric: k for k in compute_period(engine, "default", bot_id, "daily", start)
            if k.category == "customer_experience"}
    assert kpis["csat_avg"].value == pytest.approx((4 + 1 + 5 + 5) / 4)
    assert kpis["csat_score"].value == pytest.approx(3 / 4)
    assert kpis["csat_avg"].sample_size == 4
    engine.dispose()


async def test_sampling_and_disabled_surveys(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'a.sqlite3'}", tmp_path,
                             feedback={"enabled": True, "sample_rate": 0.0})
    analytics = Analytics(settings)
    assert not analytics.surveys.maybe_ask(object(), "default", 1, 1, "conversion")
    assert analytics.surveys.counters["skipped"] == 1
    off = Analytics(make_settings(f"sqlite:///{tmp_path / 'b.sqlite3'}", tmp_path))
    assert not off.surveys.active and not off.surveys.on_session_end


def test_callback_data_parsing_and_config_errors() -> None:
    assert parse_answer("bafb:4:c") == (4, "conversion")
    assert parse_answer("bafb:6:c") is None and parse_answer("bafb:4:x") is None
    assert parse_answer("buy:premium") is None and parse_answer(None) is None
    with pytest.raises(ConfigError, match=r"feedback\.after\.0"):
        parse_settings({"feedback": {"after": ["session_start"]}})
    with pytest.raises(ConfigError, match=r"feedback\.buttons"):
        parse_settings({"feedback": {"buttons": ["bad", "good"]}})


def test_csat_as_an_experiment_metric(database_url: str) -> None:
    """Mean rating per rating member; Welch's test on those means against scipy."""
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    exp = ExperimentDef("default", "tone", ExperimentSettings.model_validate({
        "variants": [{"name": "formal"}, {"name": "friendly"}], "metric": "csat",
        "min_detectable_effect": 0.1}))
    rng = random.Random(3)
    assignments, ratings = [], []
    means: dict[str, list[float]] = {"formal": [], "friendly": []}
    members: dict[str, int] = {"formal": 0, "friendly": 0}
    for m in range(1, 301):
        variant = exp.assign(m) or "formal"
        members[variant] += 1
        first = t0 + timedelta(hours=rng.uniform(0, 48))
        assignments.append({"tenant_id": "default", "experiment": "tone", "member_id": m,
                            "bot_id": 1, "variant": variant, "first_exposed_at": first,
                            "last_exposed_at": first, "exposures": 1})
        given = []
        for k in range(rng.choice([0, 1, 1, 2])):
            r = min(5, max(1, round(rng.gauss(3.4 if variant == "formal" else 4.1, 1))))
            given.append(r)
            ratings.append({"tenant_id": "default", "bot_id": 1, "update_id": m * 10 + k,
                            "ts": first + timedelta(hours=1 + k), "member_id": m,
                            "chat_id": m, "csat_rating": r, "trigger": "session_end"})
        # A rating before the first exposure does not count.
        ratings.append({"tenant_id": "default", "bot_id": 1, "update_id": m * 10 + 9,
                        "ts": first - timedelta(hours=1), "member_id": m, "chat_id": m,
                        "csat_rating": 1, "trigger": "request"})
        if given:
            means[variant].append(sum(given) / len(given))
    with engine.begin() as conn:
        conn.execute(sa.insert(ASSIGNMENTS), assignments)
        conn.execute(sa.insert(FEEDBACK), ratings)
        exp_store.save_definition(conn, exp, t0)
    report = analyze(engine, "tone", now=t0 + timedelta(days=5), bayes_draws=0)
    engine.dispose()
    by_name = {v.name: v for v in report.primary.variants}
    for name in ("formal", "friendly"):
        assert by_name[name].members == len(means[name])          # members who rated
        assert by_name[name].assigned == members[name]
        assert by_name[name].revenue_per_member == pytest.approx(np.mean(means[name]))
    ref = stats.ttest_ind(means["friendly"], means["formal"], equal_var=False)
    [c] = report.primary.comparisons
    assert c.mean_test is not None
    assert c.mean_test.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert c.difference == pytest.approx(np.mean(means["friendly"]) - np.mean(means["formal"]))
    assert report.winner == "friendly"
    assert not math.isnan(report.primary.srm.p_value)
    text = format_report(report)
    assert "mean rating" in text and "Decision: winner (friendly)" in text


async def test_request_feedback_keeps_the_handlers_reply_and_spares_opted_out_people(
        database_url: str, tmp_path: Path, emulator: TelegramEmulator) -> None:
    analytics = Analytics(make_settings(database_url, tmp_path,
                                        feedback={"question": QUESTION}))
    dp = Dispatcher()
    results: list[bool] = []

    @dp.message(Command("ask"))
    async def ask(message: Message, analytics: UpdateContext) -> None:
        assert message.bot is not None
        results.append(await analytics.plugin.request_feedback(message.bot, message.chat.id))
        await message.answer("asked you")

    analytics.setup(dp)
    token = emulator.add_bot()
    eve, fay = emulator.user("Eve"), emulator.user("Fay")
    async with RunningBot(emulator, dp, [new_bot(emulator, token)], analytics) as running:
        await analytics.opt_out(fay.id)
        eve.send("/ask")
        fay.send("/ask")
        await running.settle(2)
        await emulator.wait_for(lambda: len(results) == 2)
    await analytics.close()
    assert sorted(results) == [False, True]
    assert surveys_of(eve) and not surveys_of(fay)
    [row] = rows(database_url, "SELECT response_text, reply_count FROM interactions")
    assert (row.response_text, row.reply_count) == ("asked you", 1)   # Eve's; Fay opted out
