"""SQLModel tables. Column meanings are documented in docs/schema.md.

Every table carries ``tenant_id``. Timestamps are timezone-aware UTC on the Python
side on every database (SQLite stores them as ISO text in UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def naive_datetime_error(value: datetime) -> ValueError:
    """The error for a datetime without a time zone, which is never stored."""
    return ValueError(f"naive datetime {value!r}: bot-analytics stores aware UTC times")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend; naive values are refused."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise naive_datetime_error(value)
        value = value.astimezone(UTC)
        # SQLite has no time zones: store UTC wall time so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class Interaction(SQLModel, table=True):
    __tablename__ = "interactions"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", name="uq_interactions_update"),
        sa.Index("ix_interactions_tenant_bot_ts", "tenant_id", "bot_id", "ts"),
        sa.Index("ix_interactions_bot_member_ts", "tenant_id", "bot_id", "member_id", "ts"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    update_id: int = Field(sa_type=sa.BigInteger)
    event_type: str = Field(sa_type=sa.String(32))
    ts: datetime = _ts()
    chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    chat_type: str | None = Field(default=None, sa_type=sa.String(16))
    member_id: int = Field(sa_type=sa.BigInteger)
    language_code: str | None = Field(default=None, sa_type=sa.String(16))
    text: str | None = Field(default=None, sa_type=sa.Text)
    command: str | None = Field(default=None, sa_type=sa.String(64))
    intent: str | None = Field(default=None, sa_type=sa.String(64))
    intent_confidence: float | None = Field(default=None, sa_type=sa.Float)
    sentiment: str | None = Field(default=None, sa_type=sa.String(8))
    sentiment_score: float | None = Field(default=None, sa_type=sa.Float)
    handled: bool = Field(sa_type=sa.Boolean)
    error: str | None = Field(default=None, sa_type=sa.String(128))
    handler_time_ms: float = Field(sa_type=sa.Float)
    response_text: str | None = Field(default=None, sa_type=sa.Text)
    response_time_ms: float | None = Field(default=None, sa_type=sa.Float)
    reply_count: int = Field(default=0, sa_type=sa.Integer)
    # Not indexed on its own (migration 0011): the ids begin with the bot and chat, so
    # each batch's inserts landed all over such an index. A session is found through
    # the member index, as the id names its member (docs/schema.md).
    session_id: str | None = Field(default=None, sa_type=sa.String(64))
    escalated: bool = Field(default=False, sa_type=sa.Boolean)
    monetization_event: bool = Field(default=False, sa_type=sa.Boolean)


class Member(SQLModel, table=True):
    __tablename__ = "members"

    tenant_id: str = Field(sa_type=sa.String(64), primary_key=True)
    bot_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    member_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    first_seen: datetime = _ts()
    last_seen: datetime = _ts()
    language_code: str | None = Field(default=None, sa_type=sa.String(16))
    campaign: str | None = Field(default=None, sa_type=sa.String(64))
    blocked: bool = Field(default=False, sa_type=sa.Boolean)
    opted_out: bool = Field(default=False, sa_type=sa.Boolean)


class MemberEventRow(SQLModel, table=True):
    __tablename__ = "member_events"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", "kind",
                            name="uq_member_events_update"),
        sa.Index("ix_member_events_member", "tenant_id", "member_id", "ts"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    update_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    ts: datetime = _ts()
    member_id: int = Field(sa_type=sa.BigInteger)
    chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    kind: str = Field(sa_type=sa.String(16))
    payload: str | None = Field(default=None, sa_type=sa.String(64))


class OptOut(SQLModel, table=True):
    """Members who asked not to be recorded, per tenant (stored member ids)."""

    __tablename__ = "opt_outs"

    tenant_id: str = Field(sa_type=sa.String(64), primary_key=True)
    member_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    ts: datetime = _ts()



class Conversion(SQLModel, table=True):
    """A recorded outcome, attributed to the interaction that triggered it."""

    __tablename__ = "conversions"
    __table_args__ = (
        # Any external id (a payment's charge id, a shop's order id) makes it idempotent.
        sa.UniqueConstraint("tenant_id", "bot_id", "external_id",
                            name="uq_conversions_external"),
        sa.Index("ix_conversions_tenant_bot_ts", "tenant_id", "bot_id", "ts"),
        sa.Index("ix_conversions_member", "tenant_id", "member_id", "ts"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    ts: datetime = _ts()
    member_id: int = Field(sa_type=sa.BigInteger)
    chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    interaction_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    outcome: str = Field(sa_type=sa.String(16))
    value: float = Field(default=0.0, sa_type=sa.Float)
    amount_minor: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, sa_type=sa.String(8))
    external_id: str | None = Field(default=None, sa_type=sa.String(128))
    source: str = Field(sa_type=sa.String(32))
    intent: str | None = Field(default=None, sa_type=sa.String(64))
    intent_score: float | None = Field(default=None, sa_type=sa.Float)
    trigger_text: str | None = Field(default=None, sa_type=sa.Text)
    bot_message: str | None = Field(default=None, sa_type=sa.Text)
    checkout_completed: bool = Field(default=False, sa_type=sa.Boolean)
    pages_visited: int | None = Field(default=None, sa_type=sa.Integer)
    time_to_conversion_s: float | None = Field(default=None, sa_type=sa.Float)
    details: str | None = Field(default=None, sa_type=sa.Text)


class MonetizationEvent(SQLModel, table=True):
    """One row per conversion with value: money and the interaction that led to it."""

    __tablename__ = "monetization_events"
    __table_args__ = (
        sa.UniqueConstraint("conversion_id", name="uq_monetization_conversion"),
        sa.Index("ix_monetization_tenant_bot_ts", "tenant_id", "bot_id", "ts"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    ts: datetime = _ts()
    member_id: int = Field(sa_type=sa.BigInteger)
    conversion_id: int = Field(sa_type=sa.BigInteger)
    interaction_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    intent: str | None = Field(default=None, sa_type=sa.String(64))
    value: float = Field(sa_type=sa.Float)
    amount_minor: int = Field(sa_type=sa.BigInteger)
    currency: str | None = Field(default=None, sa_type=sa.String(8))


class Feedback(SQLModel, table=True):
    """A CSAT rating (1 to 5) a member gave in answer to the survey."""

    __tablename__ = "feedback"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", name="uq_feedback_update"),
        sa.Index("ix_feedback_tenant_bot_ts", "tenant_id", "bot_id", "ts"),
        sa.Index("ix_feedback_member", "tenant_id", "member_id", "ts"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    update_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    ts: datetime = _ts()
    member_id: int = Field(sa_type=sa.BigInteger)
    chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    csat_rating: int = Field(sa_type=sa.SmallInteger)
    trigger: str = Field(sa_type=sa.String(16))


class KpiMetric(SQLModel, table=True):
    """Rolled-up KPIs (KPIS.md). Recomputing a period replaces its rows."""

    __tablename__ = "kpi_metrics"
    __table_args__ = (
        sa.Index("ix_kpi_lookup", "tenant_id", "bot_id", "aggregation_period", "period_start",
                 "metric_type"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int = Field(sa_type=sa.BigInteger)
    metric_category: str = Field(sa_type=sa.String(32))
    metric_type: str = Field(sa_type=sa.String(48))
    metric_value: float = Field(sa_type=sa.Float)
    aggregation_period: str = Field(sa_type=sa.String(8))
    period_start: datetime = _ts()
    dimension: str | None = Field(default=None, sa_type=sa.String(128))
    sample_size: int = Field(sa_type=sa.BigInteger)
    computed_at: datetime = _ts()


class Experiment(SQLModel, table=True):
    """An A/B experiment's definition (JSON) and its state: running until stopped, then
    serving its winner (docs/experiments.md)."""

    __tablename__ = "experiments"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name", name="uq_experiments_name"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    name: str = Field(sa_type=sa.String(64))
    definition: str = Field(sa_type=sa.Text)
    source: str = Field(sa_type=sa.String(16))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    stopped_at: datetime | None = _ts(nullable=True)
    winner: str | None = Field(default=None, sa_type=sa.String(32))


class ExperimentAssignment(SQLModel, table=True):
    """A member's variant, from their first exposure on; exposures are counted."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (
        sa.Index("ix_assignments_variant", "tenant_id", "experiment", "variant",
                 "first_exposed_at", "exposures"),
    )

    tenant_id: str = Field(sa_type=sa.String(64), primary_key=True)
    experiment: str = Field(sa_type=sa.String(64), primary_key=True)
    member_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    bot_id: int = Field(sa_type=sa.BigInteger)
    variant: str = Field(sa_type=sa.String(32))
    first_exposed_at: datetime = _ts()
    last_exposed_at: datetime = _ts()
    exposures: int = Field(sa_type=sa.BigInteger)


class OptimizationRun(SQLModel, table=True):
    """One optimizer run over a tenant's period: every finding as JSON (docs/optimizer.md)."""

    __tablename__ = "optimization_runs"
    __table_args__ = (
        sa.Index("ix_optimization_runs_tenant", "tenant_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    bot_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    period_start: datetime = _ts()
    period_end: datetime = _ts()
    created_at: datetime = _ts()
    source: str = Field(sa_type=sa.String(16))
    seconds: float = Field(sa_type=sa.Float)
    interactions: int = Field(sa_type=sa.BigInteger)
    members: int = Field(sa_type=sa.BigInteger)
    recommendations: int = Field(sa_type=sa.Integer)
    result: str = Field(sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)


class MemberSegment(SQLModel, table=True):
    """Each member's segment from the latest optimizer run (``analytics.segment()``)."""

    __tablename__ = "member_segments"

    tenant_id: str = Field(sa_type=sa.String(64), primary_key=True)
    member_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    segment: str = Field(sa_type=sa.String(128))
    run_id: int = Field(sa_type=sa.BigInteger)
    assigned_at: datetime = _ts()


class Delivery(SQLModel, table=True):
    """A report or an alert sent (or not) to one chat, once per period: a restart does
    not post it twice, and a delivery cut short resumes where it stopped."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "kind", "name", "period_start", "chat_id",
                            name="uq_deliveries"),
    )

    id: int | None = Field(default=None, sa_type=BigIntPK, primary_key=True)
    tenant_id: str = Field(sa_type=sa.String(64))
    kind: str = Field(sa_type=sa.String(16))
    name: str = Field(sa_type=sa.String(128))
    period_start: datetime = _ts()
    chat_id: int = Field(sa_type=sa.BigInteger)
    status: str = Field(sa_type=sa.String(16))
    parts_sent: int = Field(default=0, sa_type=sa.Integer)
    attempts: int = Field(default=0, sa_type=sa.Integer)
    updated_at: datetime = _ts()
    error: str | None = Field(default=None, sa_type=sa.Text)


# The scheduler's job store: APScheduler's table layout, created by our migrations so
# that every table comes from Alembic. APScheduler reads and writes it.
scheduler_jobs = sa.Table(
    "bot_analytics_jobs", SQLModel.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)

metadata = SQLModel.metadata
