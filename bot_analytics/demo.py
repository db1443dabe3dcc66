"""``bot-analytics demo``: the example shop bot, the offline Telegram, and a few hundred
simulated people over 30 days of simulated time, recorded on the embedded SQLite.

The simulation plants known behaviour that the analyses should find: people who ask
about prices and then open the shop buy far more often (the profitable intent
``pricing``); people who arrive through the ``spring_promo`` link buy more (a segment
that buys); complaints about a late order are followed by a request for a human four
times as often as other complaints (the phrase ``late``); some unhappy people block the
bot; people offered Premium at 20% off buy twice as often (the experiment's winner).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .config import parse_settings
from .emulator import SimUser, TelegramEmulator
from .plugin import Analytics

log = logging.getLogger("bot_analytics.demo")

DEMO_INTENT_RULES = {
    "escalate": {"keywords": ["human", "agent", "operator", "real person"]},
    "greeting": {"keywords": ["hi", "hello", "hey"]},
    "complaint": {"keywords": ["late", "broken", "terrible", "awful", "wrong", "angry"]},
    "delivery": {"keywords": ["delivery", "deliver", "shipping", "ship"]},
    "pricing": {"keywords": ["price", "prices", "cost", "how much", "plans"]},
    "refund": {"keywords": ["refund"]},
    "thanks": {"keywords": ["thanks", "thank you", "great", "love"]},
}

GREETINGS = ["hi", "hello there", "hey!", "Hi, I have a question"]
PRICE_QUESTIONS = ["how much is premium?", "what are your prices?", "what plans do you have",
                   "how much does it cost?"]
DELIVERY_QUESTIONS = ["how long does delivery take?", "do you ship to Canada?",
                      "when will my order ship?"]
COMPLAINTS = ["my order is late again, this is terrible", "the item arrived broken!!",
              "this is awful, wrong size delivered", "I'm angry, my package is late"]
ESCALATIONS = ["I want to talk to a human", "get me a real person please", "operator!",
               "can I speak to an agent?"]
THANKS = ["thanks, great service!", "thank you, I love it", "great, thanks :)"]
UNKNOWN = ["do you sell bikes?", "what's the weather like", "asdf", "is this a bot?",
           "tell me a joke", "can I pay with crypto?"]


#: Share of complaints followed by a request for a human: most of those about a late
#: order, few of the others (the phrase the optimizer should find).
LATE_ESCALATION = 0.8
OTHER_ESCALATION = 0.2

#: How much more often people buy when Premium is offered at 20% off (the planted effect).
DISCOUNT_LIFT = 2.0

#: Share of CSAT surveys people answer, and the ratings they give by the survey's
#: trigger (session end, conversion, escalation, request): buyers are happier than
#: people who had to ask for a human.
SURVEY_ANSWER_RATE = 0.6
RATINGS = {"s": [2, 3, 4, 4, 5], "c": [3, 4, 5, 5, 5], "e": [1, 1, 2, 3, 4],
           "r": [3, 4, 5]}


@dataclass(order=True)
class _Action:
    at: datetime
    seq: int
    user: int = field(compare=False)
    kind: str = field(compare=False)
    arg: Any = field(compare=False, default=None)


class SimClock:
    """The simulation's time; the plugin and the emulator read it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()


def plan_actions(users: int, days: int, start: datetime, seed: int,
                 variant_of: Callable[[int], str | None] | None = None,
                 personas: dict[int, str] | None = None) -> list[_Action]:
    """Who does what when: a list of actions in time order, reproducible from the seed.

    ``variant_of`` gives each person's variant of the ``premium_pitch`` experiment (it is
    deterministic, so the simulation knows it in advance): ``save20`` is the planted
    winner, people who see it buy more often. ``personas``, when given, receives each
    person's planted persona: ``shopper`` (the segment that buys), ``browser`` or
    ``support``."""
    rng = random.Random(seed)
    actions: list[_Action] = []
    seq = 0

    def add(at: datetime, user: int, kind: str, arg: Any = None) -> None:
        nonlocal seq
        actions.append(_Action(at, seq, user, kind, arg))
        seq += 1

    for user in range(users):
        campaign = rng.choices([None, "spring_promo", "partner_blog"], [55, 30, 15])[0]
        persona = rng.choices(["browser", "shopper", "support"], [40, 25, 35])[0]
        if personas is not None:
            personas[user] = persona
        arrive = start + timedelta(days=rng.uniform(0, days - 1), minutes=rng.uniform(0, 60))
        visits = 1 + (rng.random() < 0.55) + (rng.random() < 0.3) + (rng.random() < 0.15)
        day = arrive
        for visit in range(visits):
            t = day
            if visit == 0:
                add(t, user, "start", campaign)
                t += timedelta(minutes=rng.uniform(1, 3))
            script: list[tuple[str, Any]] = []
            if persona == "shopper" or (persona == "browser" and rng.random() < 0.35):
                if rng.random() < 0.7:
                    script.append(("text", rng.choice(PRICE_QUESTIONS)))
                    buy_p = 0.45 if campaign == "spring_promo" else 0.3
                else:
                    buy_p = 0.2 if campaign == "spring_promo" else 0.08
                if variant_of is not None and variant_of(user) == "save20":
                    buy_p = min(0.95, buy_p * DISCOUNT_LIFT)
                script.append(("shop", None))
                if rng.random() < buy_p:
                    script.append(("buy", rng.choice(["basic", "premium", "premium"])))
                    if rng.random() < 0.5:
                        script.append(("text", rng.choice(THANKS)))
            elif persona == "support":
                if rng.random() < 0.5:
                    script.append(("text", rng.choice(DELIVERY_QUESTIONS)))
                if rng.random() < 0.6:
                    complaint = rng.choice(COMPLAINTS)
                    script.append(("text", complaint))
                    # The planted phrase: people whose order is late ask for a human.
                    if rng.random() < (LATE_ESCALATION if "late" in complaint
                                       else OTHER_ESCALATION):
                        script.append(("text", rng.choice(ESCALATIONS)))
                    elif rng.random() < 0.3:
                        script.append(("block", None))
                else:
                    script.append(("text", rng.choice(["can I get a refund?", "refund please",
                                                       "/help"])))
            else:
                script.append(("text", rng.choice(GREETINGS)))
                if rng.random() < 0.5:
                    script.append(("text", rng.choice(UNKNOWN)))
                if rng.random() < 0.2:
                    script.append(("photo", None))
                if rng.random() < 0.3:
                    script.append(("text", "/help"))
            for kind, arg in script:
                add(t, user, kind, arg)
                t += timedelta(minutes=rng.uniform(1, 4))
                if kind == "block":
                    break
            if any(kind == "block" for kind, _ in script):
                break
            day = day + timedelta(days=rng.uniform(1, 9), hours=rng.uniform(-3, 3))
            if day >= start + timedelta(days=days):
                break
    actions.sort()
    return actions


@dataclass
class DemoResult:
    database_url: str
    users: int
    updates: int
    seconds: float
    analytics: Analytics
    first: datetime  # simulated time: the first day...
    last: datetime   # ...and the end (exclusive)
    actions: list[_Action] = field(default_factory=list)  # what the people were to do
    personas: dict[int, str] = field(default_factory=dict)  # person -> planted persona
    telegram_ids: dict[int, int] = field(default_factory=dict)  # person -> Telegram user id
    survey_answers: int = 0  # rating buttons pressed (updates, but not interactions)
    finale: Finale | None = None  # rollups, optimizer, weekly report, admin session


async def run_demo(*, users: int = 600, days: int = 30, seed: int = 7,
                   workdir: str | Path = "bot_analytics_demo", database_url: str | None = None,
                   progress: bool = True, start: datetime | None = None,
                   on_slice: Callable[[int, int], None] | None = None,
                   wrap_up: bool = True) -> DemoResult:
    """Run the simulation; returns where the data went. ``wrap_up``: then roll up the
    KPIs, run the optimizer, post the weekly report to the team channel and let the
    operator ask the bot for numbers (:class:`Finale`)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession

    from .examples.shop_bot import build_dispatcher

    work = Path(workdir)
    if database_url is None:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        database_url = f"sqlite:///{work / 'analytics.sqlite3'}"
    else:
        work.mkdir(parents=True, exist_ok=True)
    begin = start or datetime(2026, 10, 1, tzinfo=UTC)
    clock = SimClock(begin)
    emu = await TelegramEmulator(clock=clock.timestamp).start()
    channel = emu.channel("Demo Shop team")
    settings = parse_settings({
        "database": {"url": database_url, "auto_migrate": True},
        "writer": {"flush_interval": 0.2, "spool_path": str(work / "analytics.spool")},
        "intents": {"rules": DEMO_INTENT_RULES, "callback_prefixes": {"buy:": "purchase"}},
        "feedback": {"enabled": True, "sample_rate": 0.5},
        # /shop opens the shop's menu: like the buy button, it is the purchase's path,
        # not a reason to buy.
        "optimizer": {"funnel_intents": ["purchase", "checkout", "payment", "/shop"]},
        # The shop's operator asks the bot for numbers; the team channel gets the weekly
        # report.
        "admin": {"enabled": True, "admins": [DEMO_ADMIN]},
        "reports": {"weekly": {"chats": [channel["id"]], "period": "week"}},
    }, "demo settings")
    analytics = Analytics(settings, clock=clock)
    analytics.surveys.rng.seed(seed)  # which moments get a survey: reproducible
    token = emu.add_bot("demo_shop_bot", "Demo Shop")
    bot = Bot(token, session=AiohttpSession(api=emu.api_server()))
    dp = build_dispatcher(analytics)
    polling = asyncio.create_task(dp.start_polling(
        bot, allowed_updates=analytics.allowed_updates(dp), handle_signals=False,
        polling_timeout=1, close_bot_session=True))
    people = {i: emu.user(f"User{i}", language_code=random.Random(seed + i).choice(
        ["en", "en", "en", "en", "de"])) for i in range(users)}
    pitch = analytics.experiments[(settings.tenants.default, "premium_pitch")]
    personas: dict[int, str] = {}
    actions = plan_actions(users, days, begin, seed,
                           variant_of=lambda i: pitch.assign(people[i].id), personas=personas)
    injected = answered = 0
    by_id = {person.id: person for person in people.values()}
    survey_rng = random.Random(seed * 31)
    calls_seen = 0

    async def answer_surveys() -> int:
        """Ask in idle chats, then let some people answer the surveys sent so far."""
        nonlocal calls_seen
        await analytics.surveys.survey_idle_sessions()
        await analytics.surveys.flush()
        new, calls_seen = emu.calls[calls_seen:], len(emu.calls)
        pressed = 0
        for call in new:
            if call.method != "sendMessage" or not call.ok \
                    or call.params.get("text") != settings.feedback.question:
                continue
            person = by_id.get(int(call.params["chat_id"]))
            if person is None or survey_rng.random() > SURVEY_ANSWER_RATE:
                continue
            buttons = call.result["reply_markup"]["inline_keyboard"][0]
            trigger = buttons[0]["callback_data"].rsplit(":", 1)[1]
            rating = survey_rng.choice(RATINGS[trigger])
            person.press(call.result, buttons[rating - 1]["callback_data"])
            pressed += 1
        return pressed

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(actions), unit="action", desc="simulating", leave=False,
                   disable=None)  # off when the output is not a terminal
    t0 = time.perf_counter()
    try:
        i = 0
        while i < len(actions):
            # One slice: actions in the same simulated minute, at most one per person,
            # so each person's next message comes after the bot has answered the last.
            slice_at = actions[i].at.replace(second=0, microsecond=0)
            clock.now = slice_at
            busy: set[int] = set()
            payments: list[Any] = []
            j = i
            while j < len(actions) and actions[j].at < slice_at + timedelta(minutes=1) \
                    and actions[j].user not in busy:
                act = actions[j]
                busy.add(act.user)
                injected += _perform(people[act.user], act, emu, payments)
                j += 1
            done = j - i
            i = j
            for coro in payments:
                injected += await coro
            await emu.wait_for(functools.partial(_caught_up, analytics, injected), timeout=30)
            answers = await answer_surveys()
            if answers:
                injected += answers
                answered += answers
                await emu.wait_for(functools.partial(_caught_up, analytics, injected), timeout=30)
            if bar is not None:
                bar.update(done)
            if on_slice is not None:
                on_slice(i, len(actions))
        seconds = time.perf_counter() - t0
        finale = None
        if wrap_up:
            clock.now = begin + timedelta(days=days)
            await analytics.flush()
            finale = await _wrap_up(analytics, emu, channel["id"], work, begin,
                                    begin + timedelta(days=days))
    finally:
        if bar is not None:
            bar.close()
        await dp.stop_polling()
        await polling
        await emu.stop()
    return DemoResult(database_url, users, injected, seconds, analytics,
                      begin, begin + timedelta(days=days), actions,
                      survey_answers=answered, personas=personas,
                      telegram_ids={i: person.id for i, person in people.items()},
                      finale=finale)


def _caught_up(analytics: Analytics, expected: int) -> bool:
    """True once the plugin has finished handling ``expected`` updates."""
    return analytics.writer.counters.updates >= expected


#: The demo's operator: the Telegram user id of the shop's admin.
DEMO_ADMIN = 999_000_001
#: What the operator asks the bot at the end of the month.
ADMIN_SESSION = ("/stats week", "/recommendations", "/segments")


@dataclass
class Finale:
    """What happened after the simulated month: the KPIs rolled up, the optimizer run,
    the weekly report posted to the team channel, the operator's questions."""

    optimizer_run: int | None
    report_outcome: dict[str, int]
    channel_messages: list[str]                  #: the report's texts (HTML)
    chart_files: list[Path]                      #: its charts, saved in the work folder
    admin_session: list[tuple[str, list[str]]]   #: command -> the bot's answers (HTML)


async def _wrap_up(analytics: Analytics, emu: TelegramEmulator, channel: int, work: Path,
                   first: datetime, end: datetime) -> Finale:
    from .jobs import _instances
    from .kpis.periods import period_start
    from .kpis.rollup import rollup_range
    from .optimize import optimize
    from .reports.post import post_report

    engine = analytics.engine
    await asyncio.to_thread(rollup_range, engine, "daily", first, end)
    # Whole weeks only, so the last week compares like with like.
    await asyncio.to_thread(rollup_range, engine, "weekly", first,
                            period_start(end, "weekly"))
    _, run_id = await asyncio.to_thread(optimize, engine, analytics.settings,
                                        analytics.settings.tenants.default, start=first,
                                        end=end, source="demo", now=end)
    _instances[analytics.name] = analytics
    outcome = await post_report(analytics, "weekly", end)
    texts: list[str] = []
    charts: list[Path] = []
    for call in emu.calls:
        if not call.ok or int(call.params.get("chat_id", 0)) != channel:
            continue
        if call.method == "sendMessage":
            texts.append(call.params["text"])
        elif call.method == "sendPhoto":
            path = work / f"weekly-report-{len(charts) + 1}.png"
            path.write_bytes(call.params["photo"]["content"])
            charts.append(path)
    operator = emu.user("Operator", user_id=DEMO_ADMIN)
    session: list[tuple[str, list[str]]] = []
    for command in ADMIN_SESSION:
        before = len(emu.messages_to(DEMO_ADMIN))
        expected = analytics.writer.counters.updates + 1
        operator.send(command)
        # The plugin counts an admin command once its answer is complete, chart included.
        await emu.wait_for(functools.partial(_caught_up, analytics, expected), timeout=60)
        session.append((command, [m.get("text") or f"[picture: {m.get('caption') or 'chart'}]"
                                  for m in emu.messages_to(DEMO_ADMIN)[before:]]))
    return Finale(run_id, outcome, texts, charts, session)


def _perform(user: SimUser, act: _Action, emu: TelegramEmulator, payments: list[Any]) -> int:
    """Queue the updates of one action; returns how many were queued now."""
    kind = act.kind
    if kind == "start":
        user.start(act.arg)
    elif kind == "text":
        user.send(act.arg)
    elif kind == "shop":
        user.command("shop")
    elif kind == "photo":
        user.send_photo()
    elif kind == "block":
        user.block()
    elif kind == "buy":
        # Press the button, then pay: the payment runs as the bot answers.
        async def purchase(plan: str = act.arg) -> int:
            menu = next((m for m in reversed(user.received()) if m.get("reply_markup")), None)
            if menu is None:
                return 0
            def invoices() -> list[Any]:
                return [m for m in user.received() if "invoice" in m]

            before = len(invoices())
            user.press(menu, f"buy:{plan}")
            await emu.wait_for(lambda: len(invoices()) > before)
            inv = invoices()[-1]["invoice"]
            accepted = await user.pay(inv["currency"], inv["total_amount"], f"plan:{plan}")
            return 3 if accepted else 2

        payments.append(purchase())
        return 0
    return 1


def summarize(database_url: str) -> str:
    """A plain-text summary of what the demo recorded."""
    engine = sa.create_engine(database_url)
    lines: list[str] = []
    with engine.connect() as conn:
        def q(sql: str) -> list[Any]:
            return list(conn.execute(sa.text(sql)))

        total, members, sessions = q(
            "SELECT count(*), count(DISTINCT member_id), count(DISTINCT session_id) "
            "FROM interactions")[0]
        first, last = q("SELECT min(ts), max(ts) FROM interactions")[0]
        lines.append(f"Recorded {total:,} interactions from {members:,} members in "
                     f"{sessions:,} sessions, {str(first)[:10]} to {str(last)[:10]}.")
        lines.append("")
        lines.append("By type:   " + ", ".join(
            f"{t} {n:,}" for t, n in q("SELECT event_type, count(*) FROM interactions "
                                      "GROUP BY event_type ORDER BY count(*) DESC")))
        lines.append("Intents:   " + ", ".join(
            f"{t} {n:,}" for t, n in q("SELECT intent, count(*) FROM interactions "
                                      "GROUP BY intent ORDER BY count(*) DESC LIMIT 12")))
        lines.append("Sentiment: " + ", ".join(
            f"{t} {n:,}" for t, n in q("SELECT sentiment, count(*) FROM interactions "
                                      "WHERE sentiment IS NOT NULL GROUP BY sentiment "
                                      "ORDER BY sentiment")))
        handled, errors, unhandled, escalated = q(
            "SELECT sum(CASE WHEN handled THEN 1 ELSE 0 END), "
            "sum(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END), "
            "sum(CASE WHEN handled THEN 0 ELSE 1 END), "
            "sum(CASE WHEN escalated THEN 1 ELSE 0 END) FROM interactions")[0]
        lines.append(f"Handled:   {handled:,} handled, {unhandled:,} not handled, "
                     f"{errors:,} raised, {escalated:,} escalated")
        times = [r[0] for r in q("SELECT response_time_ms FROM interactions "
                                 "WHERE response_time_ms IS NOT NULL ORDER BY 1")]
        if times:
            import math

            def pct(p: float) -> float:
                return float(times[max(0, math.ceil(p * len(times)) - 1)])

            lines.append(f"Replies:   {len(times):,} answered; response time p50 "
                         f"{pct(0.5):.1f} ms, p95 {pct(0.95):.1f} ms (loopback)")
        lines.append("Campaigns: " + ", ".join(
            f"{c or '(none)'} {n:,}" for c, n in q(
                "SELECT campaign, count(*) FROM members GROUP BY campaign "
                "ORDER BY count(*) DESC")))
        purchases, buyers = q("SELECT count(*), count(DISTINCT member_id) FROM conversions "
                              "WHERE outcome = 'purchased'")[0]
        lines.append(f"Purchases: {purchases:,} by {buyers:,} members; revenue " + ", ".join(
            f"{cur} {minor / 100:,.2f}" for cur, minor in q(
                "SELECT currency, sum(amount_minor) FROM conversions "
                "WHERE outcome = 'purchased' GROUP BY currency")))
        lines.append("  by campaign: " + ", ".join(
            f"{c or '(none)'} {n:,} of {m:,} members" for c, n, m in q(
                "SELECT m.campaign, count(DISTINCT c.member_id), count(DISTINCT m.member_id) "
                "FROM members m LEFT JOIN conversions c ON c.member_id = m.member_id "
                "AND c.tenant_id = m.tenant_id AND c.outcome = 'purchased' "
                "GROUP BY m.campaign ORDER BY m.campaign")))
        lines.append("  by trigger intent: " + ", ".join(
            f"{i or '(none)'} {n:,}" for i, n in q(
                "SELECT intent, count(*) FROM conversions WHERE outcome = 'purchased' "
                "GROUP BY intent ORDER BY count(*) DESC")))
        lines.append("Resolved:  " + str(q("SELECT count(*) FROM conversions "
                                           "WHERE outcome = 'resolved'")[0][0]))
        rated, mean = q("SELECT count(*), avg(csat_rating) FROM feedback")[0]
        if rated:
            lines.append(f"CSAT:      {rated:,} ratings, mean {mean:.2f} of 5; by trigger " +
                         ", ".join(f"{t} {n:,} ({m:.2f})" for t, n, m in q(
                             "SELECT trigger, count(*), avg(csat_rating) FROM feedback "
                             "GROUP BY trigger ORDER BY count(*) DESC")))
        lines.append("Lifecycle: " + ", ".join(
            f"{k} {n:,}" for k, n in q("SELECT kind, count(*) FROM member_events "
                                      "GROUP BY kind ORDER BY kind")))
    engine.dispose()
    return "\n".join(lines)
