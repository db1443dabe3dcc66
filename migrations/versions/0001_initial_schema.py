"""Initial schema: interactions, members, member events, opt-outs.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_type", sa.String(16), nullable=True),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("language_code", sa.String(16), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("command", sa.String(64), nullable=True),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("intent_confidence", sa.Float(), nullable=True),
        sa.Column("sentiment", sa.String(8), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(128), nullable=True),
        sa.Column("handler_time_ms", sa.Float(), nullable=False),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("response_time_ms", sa.Float(), nullable=True),
        sa.Column("reply_count", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("monetization_event", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", name="uq_interactions_update"),
    )
    op.create_index("ix_interactions_tenant_bot_ts", "interactions",
                    ["tenant_id", "bot_id", "ts"])
    op.create_index("ix_interactions_member", "interactions",
                    ["tenant_id", "member_id", "chat_id", "ts"])
    op.create_index("ix_interactions_session_id", "interactions", ["session_id"])

    op.create_table(
        "members",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("bot_id", sa.BigInteger(), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), primary_key=True),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("language_code", sa.String(16), nullable=True),
        sa.Column("campaign", sa.String(64), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
    )

    op.create_table(
        "member_events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.String(64), nullable=True),
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", "kind",
                            name="uq_member_events_update"),
    )
    op.create_index("ix_member_events_member", "member_events", ["tenant_id", "member_id", "ts"])

    op.create_table(
        "opt_outs",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), primary_key=True),
        sa.Column("ts", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
    op.drop_index("ix_member_events_member", table_name="member_events")
    op.drop_table("member_events")
    op.drop_table("members")
    op.drop_index("ix_interactions_session_id", table_name="interactions")
    op.drop_index("ix_interactions_member", table_name="interactions")
    op.drop_index("ix_interactions_tenant_bot_ts", table_name="interactions")
    op.drop_table("interactions")
