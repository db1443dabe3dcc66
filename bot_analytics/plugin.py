"""The public entry point: ``Analytics(settings).setup(dp)``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from .capture.context import OPTED_IN, OPTED_OUT, UpdateContext, new_context
from .capture.middleware import (
    capture_middleware,
    screen_callbacks,
    screen_messages,
)
from .capture.requests import reply_middleware
from .config import ConfigError, Settings, load_config, parse_settings
from .events import ExposureEvent, Skipped, conversion_event
from .experiments import ExperimentDef, UnknownExperiment, Variant, from_settings
from .feedback import Surveys
from .nlp.intents import DefaultIntentDetector, IntentDetector, TextIntentModel
from .nlp.sentiment import SentimentAnalyzer, VaderAnalyzer, VaderProcess
from .pipeline.enrich import Enricher, PreparedBatch, Pseudonymizer
from .pipeline.spool import Spool
from .pipeline.writer import SchemaNotReady, Writer
from .storage import db
from .storage.queries import BatchStore

if TYPE_CHECKING:
    from .experiments.analysis import ExperimentReport

log = logging.getLogger("bot_analytics")

#: Update types the plugin records; ask Telegram for these (see ``allowed_updates``).
RECORDED_UPDATE_TYPES = (
    "message", "edited_message", "callback_query", "inline_query", "chosen_inline_result",
    "pre_checkout_query", "poll_answer", "my_chat_member",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _use_helper(setting: bool | str) -> bool:
    """Whether VADER runs in a helper process (``sentiment.helper_process``)."""
    if os.name != "posix" or setting is False:
        return False
    if setting == "auto":
        return len(os.sched_getaffinity(0)) >= 2 if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1) >= 2
    return True


def _register_first(manager: Any, middleware: Any) -> None:
    """Register ``middleware`` with an aiogram middleware manager ahead of those already
    there, once: aiogram's own ``register`` appends."""
    if middleware in manager:
        return
    registered = getattr(manager, "_middlewares", None)
    if isinstance(registered, list):
        registered.insert(0, middleware)
    else:  # a manager without the list aiogram 3 keeps: last rather than first
        manager(middleware)


class Analytics:
    """Analytics for an aiogram 3 bot.

    >>> analytics = Analytics.from_config("config.yaml")   # doctest: +SKIP
    >>> analytics.setup(dp)                                # doctest: +SKIP

    ``clock`` returns the time an update counts as received (aware UTC); simulations
    and tests pass their own. ``intent_detector`` and ``sentiment_analyzer`` replace the
    defaults built from the settings.
    """

    def __init__(self, settings: Settings | None = None, *,
                 clock: Callable[[], datetime] | None = None,
                 intent_detector: IntentDetector | None = None,
                 sentiment_analyzer: SentimentAnalyzer | None = None,
                 engine: Engine | None = None, name: str = "main"):
        self.settings = settings if settings is not None else parse_settings({}, "defaults")
        s = self.settings
        #: Names this instance's scheduled jobs (several may share one database).
        self.name = name
        self.scheduler: Any = None
        self.job_counters: dict[str, Any] = {"runs": 0, "failures": 0, "last_run_at": None,
                                             "last_error": None}
        self.clock = clock or _utcnow
        # With the default clock the hot path notes only a perf_counter reading (the
        # writer turns it into a time); a custom clock is called for every update.
        self._custom_clock = clock
        self._engine = engine
        self._pseudo = Pseudonymizer.from_settings(s)
        detector = intent_detector or self._default_detector(s)
        analyzer = sentiment_analyzer
        if analyzer is None and s.sentiment.enabled:
            analyzer = (VaderProcess if _use_helper(s.sentiment.helper_process)
                        else VaderAnalyzer)(s.sentiment.languages, s.sentiment.use_language_code)
        self.enricher = Enricher(s, detector, analyzer, self._pseudo)
        self._store: BatchStore | None = None
        w = s.writer
        self.writer = Writer(
            enricher=self.enricher, write=self._write_batch, spool=Spool(w.spool_path),
            queue_size=w.queue_size, flush_at=w.flush_at, flush_interval=w.flush_interval,
            max_batch=w.max_batch,
            max_retries=w.max_retries, backoff_initial=w.backoff_initial,
            backoff_max=w.backoff_max, prepare_store=self._prepare_store,
            switch_interval=None if w.switch_interval_ms is None else
            w.switch_interval_ms / 1000)
        #: Answer end users' /optout and /optin in the capture middleware.
        self.opt_commands = s.privacy.optout_commands
        #: (bot id, tenant) of each Bot object seen, keyed by ``id(bot)`` (cheaper on the
        #: hot path than aiogram's ``Bot.__hash__``); ``_bot_objects`` keeps those bots
        #: alive, so that an id is never reused for another.
        self._bots: dict[int, tuple[int, str]] = {}
        self._bot_objects: list[Any] = []
        #: Bots by id, for the jobs that post reports and alerts.
        self.bots_by_id: dict[int, Any] = {}
        from .reports.deliver import DeliveryCounters

        #: Reports and alerts sent, failed, refused (``health()["deliveries"]``).
        self.delivery_counters = DeliveryCounters()
        self._sessions: set[int] = set()
        self._last_failure_log = 0.0
        #: Handler calls made after the handler returned, warned about once each.
        self._late_warnings: set[str] = set()
        #: Experiments served by ``variant()``: the configured ones at once, the stored
        #: ones (and stops made from the command line) once the database is reached.
        self._configured: dict[tuple[str, str], ExperimentDef] = {
            (exp.tenant_id, exp.name): exp for exp in (
                from_settings(name, cfg, s.tenants.default)
                for name, cfg in s.experiments.items())}
        self.experiments = dict(self._configured)
        self._next_experiment_refresh = 0.0
        self._refresh_task: asyncio.Future[Any] | None = None
        #: Members' segments from the latest optimizer run, for ``segment()``.
        self._segments: dict[tuple[str, int], str] = {}
        self._next_segment_refresh = 0.0
        self._segment_task: asyncio.Future[Any] | None = None
        #: The CSAT survey (``feedback`` in config.yaml).
        self.surveys = Surveys(self)
        #: Admin commands (``admin`` in config.yaml), asked before the bot's handlers.
        self.admin_router: Any = None
        if s.admin.enabled:
            from .admin import build_router

            self.admin_router = build_router(self)
        #: Messages the capture middleware looks at before the bot's handlers.
        self._screens_messages = self.admin_router is not None or self.opt_commands

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any
                    ) -> Analytics:
        """Build from a config.yaml (``None``: ./config.yaml if present, else defaults)."""
        return cls(load_config(path), **kwargs)

    @staticmethod
    def _intent_model(s: Settings) -> TextIntentModel | None:
        cfg = s.intents
        if not cfg.model and not cfg.examples:
            return None  # numpy and scipy, which the classifier needs, stay unloaded
        from .nlp.classifier import IntentClassifier
        from .nlp.data import examples_from_mapping

        if cfg.model:
            try:
                return IntentClassifier.load(cfg.model)
            except ValueError as exc:
                raise ConfigError(f"intents.model: {exc}") from None
        if cfg.examples:
            try:
                rows = examples_from_mapping(cfg.examples, "intents.examples")
                started = time.perf_counter()
                clf = IntentClassifier(unknown_label=cfg.unknown_label).fit(
                    [t for t, _ in rows], [i for _, i in rows])
            except ValueError as exc:
                message = str(exc)
                if not message.startswith("intents.examples"):
                    message = f"intents.examples: {message}"
                raise ConfigError(message) from None
            log.info("trained the intent classifier on %d examples of %d intents in %.1f s",
                     len(rows), len(clf.intents), time.perf_counter() - started)
            return clf
        return None

    @classmethod
    def _default_detector(cls, s: Settings) -> IntentDetector:
        model = cls._intent_model(s)
        try:
            return DefaultIntentDetector(s.intents.rules, s.intents.callback_prefixes,
                                         model, s.intents.unknown_label)
        except ValueError as exc:
            raise ConfigError(f"intents: {exc}") from None

    # -- database -------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            d = self.settings.database
            self._engine = db.create_db_engine(d.url, echo=d.echo,
                                               busy_timeout_ms=d.busy_timeout_ms)
        return self._engine

    @property
    def store(self) -> BatchStore:
        if self._store is None:
            m = self.settings.metrics
            self._store = BatchStore(self.engine,
                                     timedelta(minutes=m.session_timeout_minutes),
                                     timedelta(hours=m.attribution_window_hours))
        return self._store

    def _prepare_store(self) -> None:
        """Runs in the writer thread before the first write (and again until it works)."""
        if self.settings.database.migrate_on_start:
            db.upgrade(self.engine)
        else:
            current, head = db.current_revision(self.engine), db.head_revision()
            if current != head:
                raise SchemaNotReady(
                    f"the database schema is at revision {current}, this version needs "
                    f"{head}: run `bot-analytics db upgrade` (events are spooled meanwhile)")
        self.enricher.opted_out = self.store.load_opt_outs()
        try:
            self._sync_experiments()
        except Exception as error:  # experiments must not keep captured rows from the database
            self._capture_failed("storing the experiments: %s", error)

    #: How often a running bot reads experiment changes (stops, new experiments).
    EXPERIMENT_REFRESH_SECONDS = 60.0

    def _sync_experiments(self) -> None:
        """Store the configured experiments, then serve what the database holds (runs in
        the writer thread)."""
        from .experiments import store as exp_store

        now = self.clock()
        with self.engine.begin() as conn:
            for exp in self._configured.values():
                exp_store.save_definition(conn, exp, now)
        self._refresh_experiments()

    def _refresh_experiments(self) -> None:
        """Serve the stored experiments: configured ones keep their settings from the
        config file and take their state (stopped, winner) from the database."""
        from .experiments import store as exp_store

        self._next_experiment_refresh = time.monotonic() + self.EXPERIMENT_REFRESH_SECONDS
        with self.engine.connect() as conn:
            stored = exp_store.load_definitions(conn)
        merged = dict(self._configured)
        for exp in stored:
            key = (exp.tenant_id, exp.name)
            base = self._configured.get(key)
            merged[key] = exp if base is None else ExperimentDef(
                exp.tenant_id, exp.name, base.settings, base.source, exp.stopped_at,
                exp.winner, exp.created_at)
        self.experiments = merged

    def _write_batch(self, batch: PreparedBatch) -> None:
        self.store.write(batch.interactions, batch.members, batch.member_events,
                         batch.conversions, batch.exposures, batch.feedback,
                         complete=batch.complete)

    # -- wiring ---------------------------------------------------------------------
    def setup(self, dispatcher: Any) -> Analytics:
        """Register everything on an aiogram ``Dispatcher``: the capture middleware,
        reply capture on every bot it starts with, writer start-up and shutdown flush.
        With ``privacy.optout_commands`` the middleware answers ``/optout`` and
        ``/optin`` itself, before any of the bot's handlers.

        Survey answers, and the commands the plugin answers, are taken by outer
        middlewares on ``dp.callback_query`` and ``dp.message``, ahead of the bot's own."""
        dispatcher.update.outer_middleware(capture_middleware(self))
        # The plugin's own answers: ahead of the bot's outer middlewares, which do not
        # see them, as its handlers do not.
        _register_first(dispatcher.callback_query.outer_middleware, screen_callbacks)
        if self._screens_messages:
            _register_first(dispatcher.message.outer_middleware, screen_messages)
        dispatcher.startup.register(self._on_startup)
        dispatcher.shutdown.register(self._on_shutdown)
        return self

    def instrument(self, bot: Any) -> Any:
        """Capture the replies of a bot (done automatically for bots the dispatcher
        starts with; call it for bots used outside, such as a webhook's)."""
        session = bot.session
        if id(session) not in self._sessions:
            session.middleware(reply_middleware)
            self._sessions.add(id(session))
        return bot

    def allowed_updates(self, dispatcher: Any | None = None) -> list[str]:
        """Update types to ask Telegram for: the dispatcher's own plus those the plugin
        records. ``dp.start_polling(bot, allowed_updates=analytics.allowed_updates(dp))``"""
        used = set(dispatcher.resolve_used_update_types()) if dispatcher is not None else set()
        return sorted(used | set(RECORDED_UPDATE_TYPES))

    async def _on_startup(self, **data: Any) -> None:
        bots: Iterable[Any] = data.get("bots") or ([data["bot"]] if "bot" in data else [])
        for bot in bots:
            self.instrument(bot)
            self.bots_by_id.setdefault(bot.id, bot)
        await self.start()

    async def _on_shutdown(self, **_: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the background writer and the scheduled rollups (setup() does this on
        dispatcher start-up)."""
        await self.writer.start()
        self.surveys.start()
        r = self.settings.rollup
        scheduled = ((r.enabled and r.schedule) or self.settings.optimizer.enabled
                     or self.settings.reports or self.settings.retention.days is not None
                     or (self.settings.alerts.enabled and self.settings.alert_chats))
        if scheduled and self.scheduler is None:
            try:
                await self.writer.run_in_worker(self.writer._ensure_store)
                from .jobs import start_scheduler

                self.scheduler = start_scheduler(self)
            except Exception as error:
                self.job_counters["failures"] += 1
                self.job_counters["last_error"] = f"starting the scheduler: {error}"[:500]
                log.exception("bot-analytics: the scheduler did not start; KPI rollups "
                              "and optimizer runs will not happen until the plugin restarts")

    def bot_for(self, tenant_id: str, bot_id: int | None = None) -> Any:
        """The running bot with ``bot_id``, or the tenant's first; None if none runs."""
        if bot_id is not None:
            return self.bots_by_id.get(bot_id)
        tenants = self.settings.tenants
        return next((bot for bid, bot in sorted(self.bots_by_id.items())
                     if tenants.tenant_of(bid) == tenant_id), None)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything captured so far is written (or spooled)."""
        return await self.writer.flush(timeout)

    async def close(self, timeout: float | None = None) -> bool:
        """Stop the scheduler, flush and stop the writer; for bots that don't use the
        dispatcher's lifecycle."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await self.surveys.stop()
        return await self.writer.close(timeout or self.settings.writer.shutdown_timeout)

    def health(self) -> dict[str, Any]:
        """Counters of the capture pipeline and the scheduled jobs."""
        health = self.writer.health()
        jobs = dict(self.job_counters)
        if self.scheduler is not None:
            jobs["next_runs"] = {job.name: job.next_run_time
                                 for job in self.scheduler.get_jobs()}
        health["jobs"] = jobs
        helper = self.enricher.analyzer
        if isinstance(helper, VaderProcess):
            health["sentiment_helper"] = {
                "running": helper.proc is not None and helper.proc.poll() is None,
                "started": helper.started, "failures": helper.failures_total,
                "given_up": not helper.active, "sending_s": round(helper.sending_s, 3),
                "answers_s": round(helper.answers_s, 3)}
        d = self.delivery_counters
        health["deliveries"] = {"sent": d.sent, "failed": d.failed, "forbidden": d.forbidden,
                                "skipped": d.skipped, "flood_waits": d.flood_waits,
                                "errors": dict(d.errors)}
        return health

    # -- the hot path's helpers -------------------------------------------------------
    def _bot_identity(self, bot: Any) -> tuple[int, str]:
        """Bot id and tenant of a bot seen for the first time (then cached)."""
        bot_id = bot.id
        ident = (bot_id, self.settings.tenants.tenant_of(bot_id))
        self._bots[id(bot)] = ident
        self._bot_objects.append(bot)
        self.bots_by_id.setdefault(bot_id, bot)
        self.instrument(bot)
        return ident

    async def _admin_command(self, message: Any, data: dict[str, Any]) -> bool:
        """Offer a message to the admin commands; True when one of them took it."""
        from aiogram.dispatcher.event.bases import UNHANDLED

        try:
            result = await self.admin_router.propagate_event("message", message, **data)
        except ValueError as error:  # a wrong argument: tell the admin what and why
            from .admin.text import esc

            await message.answer(esc(str(error)), parse_mode="HTML")
            return True
        except Exception as error:
            self._capture_failed("admin command %r: %s", message.text, error)
            try:
                await message.answer("That command failed; the bot's log has the details.")
            except Exception:
                pass
            return True
        return result is not UNHANDLED

    async def _answer_survey(self, ctx: UpdateContext) -> None:
        try:
            await self.surveys.handle_answer(ctx)
        except Exception as error:
            self._capture_failed("recording a CSAT rating: %s", error)

    async def _answer_opt_command(self, ctx: UpdateContext, command: str) -> None:
        """``/optout`` and ``/optin`` from an end user (privacy.optout_commands)."""
        if command == "/optout":
            await ctx.opt_out()
            text = OPTED_OUT
        else:
            await ctx.opt_in()
            text = OPTED_IN
        if ctx.chat_id is not None:
            await ctx.bot.send_message(ctx.chat_id, text)

    def _failed_context(self, update: Any, bot: Any, t0: float,
                        error: Exception) -> UpdateContext:
        self._capture_failed("reading update %s: %s", getattr(update, "update_id", "?"),
                             error)
        ctx = new_context(self, update, bot, (0, self.settings.tenants.default), t0)
        ctx.marks.facts = Skipped("capture_error")
        return ctx

    def _capture_failed(self, message: str, *args: Any) -> None:
        self.writer.counters.capture_failures += 1
        now = time.monotonic()
        if now - self._last_failure_log > 10:  # a broken plugin must not flood the log
            self._last_failure_log = now
            log.exception("bot-analytics: " + message, *args)

    # -- conversions ------------------------------------------------------------------------
    def track_conversion(self, *, member_id: int, outcome: str = "purchased",
                         value: float = 0.0, currency: str | None = None,
                         chat_id: int | None = None, external_id: str | None = None,
                         details: dict[str, Any] | None = None,
                         checkout_completed: bool | None = None, ts: datetime | None = None,
                         tenant_id: str | None = None, bot_id: int | None = None) -> None:
        """Record an outcome for a member (Telegram user id), for example from a shop's
        backend. It is attributed to the member's latest interaction with the bot within
        ``metrics.attribution_window_hours``. An ``external_id`` (an order id) makes it
        idempotent. Must be called from the bot's event loop.

        Raises ``ValueError`` for an unknown outcome, a negative or non-finite value, a
        malformed currency, or a value without currency."""
        if bot_id is None:
            known = {ident[0] for ident in self._bots.values()}
            if len(known) != 1:
                raise ValueError("track_conversion: pass bot_id= (the plugin has seen "
                                 f"{len(known)} bots)")
            bot_id = known.pop()
        tenant = tenant_id or self.settings.tenants.tenant_of(bot_id)
        when = ts if ts is not None else self.clock()
        if when.tzinfo is None:
            raise ValueError("track_conversion: ts must be timezone-aware (UTC)")
        self.writer.put(conversion_event(
            tenant, bot_id, member_id, chat_id, when, outcome, value, currency,
            external_id, details, checkout_completed, source="api"))

    # -- experiments --------------------------------------------------------------------------
    async def variant(self, experiment: str, *, member_id: int | None,
                      tenant_id: str | None = None, bot_id: int | None = None) -> Variant:
        """The variant of ``experiment`` for a member (Telegram user id), recording the
        exposure. In a handler, ``await analytics.variant(name)`` on the handler's
        ``analytics`` argument fills in the member, tenant and bot.

        Raises :class:`UnknownExperiment` for a name that is neither configured nor
        stored; anything else that goes wrong is logged and the control is served."""
        tenant = tenant_id or (self.settings.tenants.tenant_of(bot_id) if bot_id is not None
                               else self.settings.tenants.default)
        exp = self.experiments.get((tenant, experiment))
        if exp is None:
            known = sorted(name for t, name in self.experiments if t == tenant)
            raise UnknownExperiment(
                f"no experiment {experiment!r} for tenant {tenant!r}; defined: "
                f"{', '.join(known) or 'none'} (experiments: in config.yaml, or "
                "`bot-analytics ab create`)")
        self._maybe_refresh_experiments()
        now = self.clock()
        try:
            chosen = exp.choose(member_id, now)
            if chosen.counted and member_id is not None:
                if bot_id is None:
                    known_bots = {ident[0] for ident in self._bots.values()}
                    bot_id = known_bots.pop() if len(known_bots) == 1 else 0
                self.writer.put(ExposureEvent(tenant, bot_id, experiment, member_id,
                                              chosen.name, now))
            return chosen
        except Exception as error:
            self._capture_failed("experiment %s: %s", experiment, error)
            return Variant(experiment, exp.control, exp.payload(exp.control), counted=False)

    def define_experiment(self, name: str, config: dict[str, Any]) -> ExperimentDef:
        """Define an experiment in code, as if it were in config.yaml (the config file's
        own definition of the same name wins). Stored when the database is reached."""
        settings = parse_settings({"experiments": {name: config}}, "define_experiment"
                                  ).experiments[name]
        exp = from_settings(name, settings, self.settings.tenants.default)
        key = (exp.tenant_id, exp.name)
        if key in self._configured and key[1] in self.settings.experiments:
            return self._configured[key]
        self._configured[key] = exp
        self.experiments = {**self.experiments, key: exp}
        if self.writer._store_ready:
            self._next_experiment_refresh = 0.0  # store it with the next refresh
        return exp

    def _maybe_refresh_experiments(self) -> None:
        if time.monotonic() < self._next_experiment_refresh or not self.writer._store_ready:
            return
        if self._refresh_task is not None and not self._refresh_task.done():
            return
        self._next_experiment_refresh = time.monotonic() + self.EXPERIMENT_REFRESH_SECONDS

        async def refresh() -> None:
            try:
                await self.writer.run_in_worker(self._sync_experiments)
            except Exception as error:
                self._capture_failed("reading experiments: %s", error)

        self._refresh_task = asyncio.ensure_future(refresh())

    def run_ab_test(self, tenant_id: str | None, config: dict[str, Any]) -> int:
        """Define and start an experiment from a mapping (the keys of an entry under
        ``experiments:`` in config.yaml, plus ``name``); returns its id. Blocking: call
        it from set-up code or an executor, not from a busy handler."""
        from .experiments import store as exp_store

        data = dict(config)
        name = data.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ValueError("run_ab_test: the config needs a 'name'")
        settings = parse_settings({"experiments": {name: data}}, "run_ab_test"
                                  ).experiments[name]
        tenant = tenant_id or settings.tenant or self.settings.tenants.default
        exp = ExperimentDef(tenant, name, settings, "api", created_at=self.clock())
        if self.settings.database.migrate_on_start:
            db.upgrade(self.engine)
        with self.engine.begin() as conn:
            test_id = exp_store.save_definition(conn, exp, self.clock(), replace=False)
        self.experiments = {**self.experiments, (tenant, name): exp}
        return test_id

    def analyze_ab_test(self, test_id: int) -> ExperimentReport:
        """The :class:`~bot_analytics.experiments.analysis.ExperimentReport` of an
        experiment: ``control_rate``, ``variant_rate``, ``improvement``, ``winner``,
        ``recommended_action`` and every statistic behind them."""
        from .experiments.analysis import analyze

        return analyze(self.engine, test_id=test_id, now=self.clock())

    # -- optimizer ----------------------------------------------------------------------------
    async def segment(self, member_id: int, *, tenant_id: str | None = None) -> str | None:
        """The member's (Telegram user id) segment from the latest optimizer run, such as
        ``"high-value buyers"`` or ``"at risk"``; None when the member was not segmented
        (new since the run, or no run yet). Read from a cache the bot refreshes every
        ``optimizer.segment_refresh_minutes`` and after each scheduled run."""
        tenant = tenant_id or self.settings.tenants.default
        key = (tenant, self.stored_member_id(member_id))
        if time.monotonic() >= self._next_segment_refresh:
            self._next_segment_refresh = time.monotonic() + 60 * \
                self.settings.optimizer.segment_refresh_minutes
            first = not self._segments and self._segment_task is None
            self._segment_task = asyncio.ensure_future(self._refresh_segments())
            if first:  # the first call waits, so a new bot answers right away
                await asyncio.shield(self._segment_task)
        return self._segments.get(key)

    async def _refresh_segments(self) -> None:
        from .optimize import load_segments

        def work() -> dict[tuple[str, int], str]:
            self.writer._ensure_store()
            return load_segments(self.engine)

        try:
            self._segments = await self.writer.run_in_worker(work)
        except Exception as error:
            self._capture_failed("reading member segments: %s", error)

    def optimize(self, tenant_id: str | None = None, *, days: float | None = None,
                 store: bool = True) -> Any:
        """Run the optimizer now for a tenant over the last ``days`` (default
        ``optimizer.days``) and store it; returns the ``OptimizationReport``. Blocking:
        call it from set-up code or an executor, not from a busy handler."""
        from .optimize import optimize

        now = self.clock()
        start = now - timedelta(days=days or self.settings.optimizer.days)
        report, _ = optimize(self.engine, self.settings,
                             tenant_id or self.settings.tenants.default, start=start, end=now,
                             source="api", store=store, now=now)
        self._next_segment_refresh = 0.0
        return report

    # -- feedback ---------------------------------------------------------------------------
    async def request_feedback(self, bot: Any, chat_id: int, *, member_id: int | None = None,
                               tenant_id: str | None = None) -> bool:
        """Ask for a CSAT rating now (the survey's question and buttons), whatever the
        sampling and cooldown say; True when it was sent. In a handler,
        ``analytics.request_feedback()`` asks the person behind the update."""
        tenant = tenant_id or self.settings.tenants.tenant_of(bot.id)
        member = member_id or chat_id
        if (tenant, self.stored_member_id(member)) in self.enricher.opted_out:
            return False
        self.surveys.last_asked[(tenant, member)] = self.clock()
        # A task of its own: sending must not touch the caller's reply tracking.
        return await asyncio.ensure_future(self.surveys.ask(bot, chat_id, "request"))

    # -- members ----------------------------------------------------------------------------
    def stored_member_id(self, member_id: int) -> int:
        """The id under which a Telegram user is stored (a keyed hash when
        pseudonymisation is on)."""
        return self._pseudo.member(member_id)

    async def opt_out(self, member_id: int, *, tenant_id: str | None = None,
                      bot_id: int | None = None) -> None:
        """Stop recording a member (Telegram user id) for a tenant."""
        await self._set_opt_out(member_id, True, tenant_id, bot_id)

    async def opt_in(self, member_id: int, *, tenant_id: str | None = None,
                     bot_id: int | None = None) -> None:
        await self._set_opt_out(member_id, False, tenant_id, bot_id)

    async def _set_opt_out(self, member_id: int, value: bool, tenant_id: str | None,
                           bot_id: int | None) -> None:
        tenant = tenant_id or self.settings.tenants.default
        stored = self.stored_member_id(member_id)
        key = (tenant, stored)

        def remember() -> None:
            if value:
                self.enricher.opted_out.add(key)
            else:
                self.enricher.opted_out.discard(key)

        remember()  # at once, for what is queued from now on

        def work() -> None:
            self.writer._ensure_store()
            remember()  # again: a first connection reloads the set from the database
            self.store.set_opt_out(tenant, stored, value, self.clock(), bot_id)

        await self.writer.run_in_worker(work)

    async def forget(self, member_id: int, *, tenant_id: str | None = None) -> dict[str, int]:
        """Erase a member's rows from every table (after flushing what is queued)."""
        await self.flush(self.settings.writer.shutdown_timeout)
        stored = self.stored_member_id(member_id)

        def work() -> dict[str, int]:
            with self.engine.begin() as conn:
                deleted = db.delete_member(conn, tenant_id, stored)
            self.store.sessions.forget(stored)
            return deleted

        deleted: dict[str, int] = await self.writer.run_in_worker(work)
        return deleted
