"""Settings for bot-analytics, read from config.yaml.

Every key has a default, so an empty file (or no file) is a valid configuration.
Unknown keys are errors: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DATABASE_URL_ENV = "BOT_ANALYTICS_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///bot_analytics.sqlite3"


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message says what and where."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL
    #: Apply Alembic migrations when the plugin starts. ``None`` means "yes for SQLite,
    #: no for server databases", where schema changes are usually a deploy step.
    auto_migrate: bool | None = None
    echo: bool = False
    #: SQLite busy timeout: how long a writer waits for a lock before failing.
    busy_timeout_ms: int = Field(default=5000, ge=0)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def migrate_on_start(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


class TenantSettings(_Section):
    #: Tenant of every bot not listed under ``bots``.
    default: str = Field(default="default", min_length=1, max_length=64)
    #: Bot id (the number before the colon in its token) -> tenant id.
    bots: dict[int, str] = Field(default_factory=dict)

    def tenant_of(self, bot_id: int) -> str:
        return self.bots.get(bot_id, self.default)


class WriterSettings(_Section):
    queue_size: int = Field(default=10_000, ge=1)
    flush_at: int = Field(default=500, ge=1)
    flush_interval: float = Field(default=1.0, gt=0)
    #: Most events one transaction takes. A writer with a backlog (more than flush_at
    #: waiting) catches up in larger transactions, which cost less per event.
    max_batch: int = Field(default=2000, ge=1)
    max_retries: int = Field(default=5, ge=0)
    backoff_initial: float = Field(default=0.1, gt=0)
    backoff_max: float = Field(default=10.0, gt=0)
    #: Batches that cannot be written while the database is away are appended here
    #: (already redacted) and replayed in order once it is back.
    spool_path: str = "bot_analytics.spool"
    #: How long a graceful shutdown waits for the queue to drain.
    shutdown_timeout: float = Field(default=30.0, gt=0)
    #: While the writer runs, the interpreter's switch interval is at most this: the
    #: longest the bot's event loop, waking up while the writer's thread runs Python
    #: code, waits for the interpreter lock (CPython's own is 5 ms). Process-wide; put
    #: back when the writer stops. None leaves the interpreter's setting alone.
    switch_interval_ms: float | None = Field(default=1.0, gt=0, le=1000)


class PrivacySettings(_Section):
    store_text: bool = True
    redact: bool = True
    pseudonymize_members: bool = False
    #: Environment variable holding the pseudonymisation key.
    secret_env: str = "BOT_ANALYTICS_SECRET"
    #: Register end-user ``/optout`` and ``/optin`` commands.
    optout_commands: bool = False


class IntentRule(_Section):
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)


class IntentSettings(_Section):
    #: Keyword and regular-expression rules; they override the model.
    rules: dict[str, IntentRule] = Field(default_factory=dict)
    #: Inline-button callback data prefix -> intent (longest prefix wins).
    callback_prefixes: dict[str, str] = Field(default_factory=dict)
    unknown_label: str = "unknown"
    #: A model file made by ``bot-analytics intents train`` (relative paths are relative
    #: to the config file). Labels texts that no command, rule or prefix labels.
    model: str | None = None
    #: Example texts per intent; without ``model`` a classifier is trained on them when
    #: the plugin starts. Examples under the unknown label are out-of-scope examples.
    examples: dict[str, list[str]] = Field(default_factory=dict)


class SentimentSettings(_Section):
    enabled: bool = True
    #: Languages the analyzer understands (VADER: English). Text the user's Telegram
    #: ``language_code`` or its script marks as another language gets no sentiment.
    languages: list[str] = Field(default_factory=lambda: ["en"])
    use_language_code: bool = True
    #: Score VADER in a helper process, beside the writer's thread: ``auto`` does so on a
    #: POSIX system with two or more CPUs for this process, ``false`` never (the writer's
    #: thread scores), ``true`` wherever the system allows it.
    helper_process: bool | Literal["auto"] = "auto"


class MetricSettings(_Section):
    session_timeout_minutes: float = Field(default=30.0, gt=0)
    attribution_window_hours: float = Field(default=24.0, gt=0)


FeedbackTrigger = Literal["session_end", "conversion", "escalation"]


def _all_triggers() -> list[FeedbackTrigger]:
    return ["session_end", "conversion", "escalation"]


class FeedbackSettings(_Section):
    """The CSAT survey: a 1 to 5 rating asked with an inline keyboard."""

    #: Ask people for ratings at all (``request_feedback()`` works either way).
    enabled: bool = False
    #: When to ask: once a private-chat session has been idle for the session timeout,
    #: after a purchase or a tracked conversion, after a hand-off to a human.
    after: list[FeedbackTrigger] = Field(default_factory=_all_triggers)
    #: Share of those moments at which the survey is actually sent.
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    #: Ask one person at most once in this many hours.
    cooldown_hours: float = Field(default=24.0, ge=0)
    question: str = Field(default="How would you rate your experience with this bot?",
                          min_length=1, max_length=1024)
    #: Button texts for ratings 1 to 5.
    buttons: list[str] = Field(default_factory=lambda: ["1", "2", "3", "4", "5"],
                               min_length=5, max_length=5)
    thanks: str = Field(default="Thank you for your feedback!", min_length=1,
                        max_length=200)
    #: How often idle sessions are looked for.
    check_interval_seconds: float = Field(default=30.0, gt=0)


class AdminSettings(_Section):
    """Commands for the bot's operators, answered by the plugin in the chat."""

    enabled: bool = False
    #: Telegram user ids allowed to use them.
    admins: list[int] = Field(default_factory=list)
    #: Put before every command name (``a_`` gives /a_stats) so that none clashes with
    #: the bot's own commands.
    prefix: str = Field(default="", pattern=r"^[a-z0-9_]*$", max_length=16)
    #: Also answer admins in groups (otherwise only in a private chat with the bot).
    groups: bool = False

    @model_validator(mode="after")
    def _someone(self) -> AdminSettings:
        if self.enabled and not self.admins:
            raise ValueError("admin commands are enabled but admins lists nobody: add "
                             "the Telegram user ids of the bot's operators")
        return self


PeriodKind = Literal["hourly", "daily", "weekly", "monthly"]


def _default_schedule() -> dict[PeriodKind, str]:
    return {"hourly": "5 * * * *", "daily": "15 0 * * *", "weekly": "30 0 * * mon",
            "monthly": "45 0 1 * *"}


class RollupSettings(_Section):
    #: Run the KPI rollups on a schedule inside the bot process.
    enabled: bool = True
    #: Each run also recomputes this many earlier periods, to take in late data.
    lookback: int = Field(default=2, ge=0)
    #: Cron expressions (UTC) per period kind; remove a kind to not roll it up.
    schedule: dict[PeriodKind, str] = Field(default_factory=_default_schedule)
    #: A run missed while the bot was down still happens if at most this late; runs
    #: missed several times over are coalesced into one.
    misfire_grace_seconds: int = Field(default=6 * 3600, ge=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: dict[PeriodKind, str]) -> dict[PeriodKind, str]:
        for kind, cron in value.items():
            check_cron(cron, kind)
        return value


def check_cron(cron: str, where: str = "") -> str:
    """``cron`` if APScheduler reads it as a crontab line, else a ValueError (naming
    ``where`` when given)."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{where + ': ' if where else ''}{cron!r} is not a cron expression "
                         f"(minute hour day month weekday): {exc}") from None
    return cron


class RetentionSettings(_Section):
    """How long raw rows (interactions, member events, ratings) are kept."""

    #: Raw rows older than this many days are deleted every day; ``null`` keeps them
    #: forever. Rolled-up KPIs, conversions and optimizer runs are always kept.
    days: float | None = Field(default=365.0, gt=0)
    schedule: str = "0 3 * * *"
    #: Rows deleted per transaction.
    batch_size: int = Field(default=5000, ge=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class OptimizerSettings(_Section):
    """The optimizer (docs/optimizer.md): what sells, segments, de-escalation, advice."""

    #: Run it on a schedule inside the bot process (``schedule``, UTC).
    enabled: bool = True
    schedule: str = "0 1 * * mon"
    #: Each run analyses this many days up to its start.
    days: float = Field(default=30.0, gt=0, le=366)
    #: False discovery rate across the candidates of one analysis (Benjamini-Hochberg).
    fdr: float = Field(default=0.05, gt=0, lt=0.5)
    #: Fewest sessions with (and without) a candidate for it to be tested.
    min_support: int = Field(default=30, ge=1)
    #: Intents that are the purchase itself (button, checkout, payment), never a cause.
    funnel_intents: list[str] = Field(
        default_factory=lambda: ["purchase", "checkout", "payment"])
    #: Containment rate under which a recommendation is made.
    containment_target: float = Field(default=0.8, gt=0, le=1)
    #: Seed of every random choice (k-means, cross-validation folds).
    seed: int = 7
    #: How often a running bot reloads the members' segments for ``segment()``.
    segment_refresh_minutes: float = Field(default=60.0, gt=0)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


#: Every KPI of the metric contract (KPIS.md), by the name it has in kpi_metrics.
KPI_NAMES = (
    "csat_avg", "csat_score", "sentiment_avg", "sentiment_positive_rate",
    "sentiment_neutral_rate", "sentiment_negative_rate", "containment_rate",
    "resolution_rate", "fallback_rate", "error_rate", "avg_handling_time_ms",
    "response_time_p50_ms", "response_time_p95_ms", "interactions", "sessions",
    "active_users", "new_users", "retention_rate", "retention_d1", "retention_d7",
    "retention_d30", "stickiness", "completion_rate", "bounce_rate",
    "interactions_per_session", "conversions", "revenue", "conversion_rate", "arpu")


class AlertSettings(_Section):
    """Anomalies in the daily KPIs and threshold rules, sent to the admins' chats."""

    #: Check every day after the daily rollup (``schedule``, UTC).
    enabled: bool = True
    schedule: str = "30 0 * * *"
    #: Chats to alert (user, group or channel ids); default: the admins of ``admin``.
    chats: list[int] = Field(default_factory=list)
    #: Daily series checked for anomalies that respect the weekly rhythm.
    metrics: list[str] = Field(default_factory=lambda: [
        "interactions", "conversion_rate", "revenue", "sentiment_negative_rate",
        "error_rate", "response_time_p95_ms"])
    #: Robust z-score of the residual from which a day is an anomaly.
    anomaly_threshold: float = Field(default=3.5, gt=0)
    #: Days of history the weekly rhythm is learnt from (two weeks at least).
    history_days: int = Field(default=56, ge=14, le=730)
    #: Threshold rules: ``error_rate > 0.05``, ``revenue week-over-week < -10%``.
    rules: list[str] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in KPI_NAMES]
        if unknown:
            raise ValueError(f"unknown KPI {unknown[0]!r}; KPIs are {', '.join(KPI_NAMES)}")
        return value

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        from optimizer.anomaly import parse_rule

        for rule in value:
            parse_rule(rule, KPI_NAMES)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


ReportSection = Literal["summary", "anomalies", "experiments", "recommendations", "unknown"]


def _all_sections() -> list[ReportSection]:
    return ["summary", "anomalies", "experiments", "recommendations", "unknown"]


class ReportSettings(_Section):
    """A report posted to Telegram chats (channels, groups) on a schedule."""

    #: Channel, group or user ids the bot posts to (it must be allowed to post there).
    chats: list[int] = Field(min_length=1)
    #: Cron, UTC (default: Mondays at 09:00).
    schedule: str = "0 9 * * mon"
    #: The period reported: the last whole day, week or month before the run.
    period: Literal["day", "week", "month"] = "week"
    sections: list[ReportSection] = Field(default_factory=_all_sections, min_length=1)
    #: Tenant reported on (default: tenants.default).
    tenant: str | None = None
    #: Bot reported on and posting (default: the tenant's first bot).
    bot: int | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

#: Primary and secondary metrics of an experiment: the share of members converting
#: (a purchase), revenue per member, or the share reaching a named outcome.
EXPERIMENT_METRICS = ("conversion", "revenue_per_member", "resolved", "visited", "csat")


class VariantSettings(_Section):
    name: str = Field(min_length=1, max_length=32)
    #: Relative share of the experiment's members (weights need not add up to 1).
    weight: float = Field(default=1.0, gt=0)
    #: What the variant shows: a text template (``{price}`` placeholders) or a mapping.
    payload: str | dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"variant name {value!r}: use letters, digits, '_', '-', '.'")
        return value


class ExperimentSettings(_Section):
    variants: list[VariantSettings] = Field(min_length=2)
    #: The variant the others are compared with (default: the first).
    control: str | None = None
    metric: str = "conversion"
    secondary_metrics: list[str] = Field(default_factory=list)
    #: Share of members in the experiment; the rest get the control and are not counted.
    traffic: float = Field(default=1.0, gt=0, le=1)
    #: Smallest relative lift worth detecting (0.1: +10% over the control).
    min_detectable_effect: float = Field(default=0.1, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    #: Correction across several variants: Holm, or Benjamini-Hochberg (``bh``).
    correction: Literal["holm", "bh"] = "holm"
    #: Times (UTC when no zone is given). Before start everyone gets the control and
    #: nothing is recorded; from stop on everyone gets the winner (or the control).
    start: datetime | None = None
    stop: datetime | None = None
    #: Served to everyone once the experiment is stopped (default: the control).
    winner: str | None = None
    #: Tenant whose members take part (default: tenants.default).
    tenant: str | None = None
    #: Mixed into the assignment hash (default: the experiment's name). A new salt
    #: reshuffles everyone.
    salt: str | None = None

    @field_validator("start", "stop")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("metric", "secondary_metrics")
    @classmethod
    def _metric(cls, value: str | list[str]) -> str | list[str]:
        for metric in [value] if isinstance(value, str) else value:
            if metric not in EXPERIMENT_METRICS:
                raise ValueError(f"unknown metric {metric!r}; use one of "
                                 f"{', '.join(EXPERIMENT_METRICS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSettings:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"variant names must be unique: {', '.join(twice)} repeated")
        for key in ("control", "winner"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ValueError(f"{key} {value!r} is not a variant ({', '.join(names)})")
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop.isoformat()}) must be after start "
                             f"({self.start.isoformat()})")
        return self

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name


class Settings(_Section):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    tenants: TenantSettings = Field(default_factory=TenantSettings)
    writer: WriterSettings = Field(default_factory=WriterSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    intents: IntentSettings = Field(default_factory=IntentSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    metrics: MetricSettings = Field(default_factory=MetricSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    rollup: RollupSettings = Field(default_factory=RollupSettings)
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    #: Scheduled reports by name.
    reports: dict[str, ReportSettings] = Field(default_factory=dict)
    #: A/B experiments by name (docs/experiments.md).
    experiments: dict[str, ExperimentSettings] = Field(default_factory=dict)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("experiments")
    @classmethod
    def _experiment_names(cls, value: dict[str, ExperimentSettings]
                          ) -> dict[str, ExperimentSettings]:
        for name in value:
            if not _NAME.match(name) or len(name) > 64:
                raise ValueError(f"experiment name {name!r}: at most 64 letters, digits, "
                                 "'_', '-', '.'")
        return value

    @field_validator("reports")
    @classmethod
    def _report_names(cls, value: dict[str, ReportSettings]) -> dict[str, ReportSettings]:
        for name in value:
            if not _NAME.match(name) or len(name) > 64:
                raise ValueError(f"report name {name!r}: at most 64 letters, digits, "
                                 "'_', '-', '.'")
        return value

    @property
    def alert_chats(self) -> list[int]:
        """Where alerts go: ``alerts.chats``, else the admins."""
        return self.alerts.chats or (self.admin.admins if self.admin.enabled else [])

    @field_validator("database", mode="before")
    @classmethod
    def _database_may_be_a_url(cls, value: Any) -> Any:
        # ``database: sqlite:///x.db`` is accepted as a shorthand for ``{url: ...}``.
        return {"url": value} if isinstance(value, str) else value


def _describe(error: dict[str, Any], data: Any) -> str:
    loc = [str(p) for p in error["loc"]]
    where = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        parent: Any = data
        model: Any = Settings
        for part in loc[:-1]:
            parent = parent.get(part, {}) if isinstance(parent, dict) else {}
            field = model.model_fields.get(part) if model is not None else None
            annotation = field.annotation if field is not None else None
            model = annotation if isinstance(annotation, type) and issubclass(
                annotation, BaseModel) else None
        known = list(model.model_fields) if model is not None else []
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        valid = f"; valid keys here: {', '.join(known)}" if known else ""
        return f"unknown key '{where}'{suggestion}{valid}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"'{where}': {message}"


def parse_settings(data: Any, source: str = "<settings>") -> Settings:
    """Validate a mapping as Settings; errors name the key and the source."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, "
                          f"got {type(data).__name__}")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, data) for e in exc.errors()]  # type: ignore[arg-type]
        raise ConfigError(f"{source}: " + "; ".join(lines)) from None
    override = os.environ.get(DATABASE_URL_ENV)
    if override:
        settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": override})})
    return settings


def load_config(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from a YAML file.

    With ``path=None`` the file ``config.yaml`` in the working directory is read when it
    exists; otherwise every default applies (a SQLite file in the working directory).
    ``BOT_ANALYTICS_DATABASE_URL`` overrides ``database.url``.
    """
    if path is None:
        candidate = Path("config.yaml")
        if not candidate.exists():
            return parse_settings({}, "defaults")
        path = candidate
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    settings = parse_settings(data, str(file))
    model = settings.intents.model
    if model and not Path(model).is_absolute():
        resolved = str(file.resolve().parent / model)
        settings = settings.model_copy(update={
            "intents": settings.intents.model_copy(update={"model": resolved})})
    return settings
