"""Conversions and monetization events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "conversions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("interaction_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("intent_score", sa.Float(), nullable=True),
        sa.Column("trigger_text", sa.Text(), nullable=True),
        sa.Column("bot_message", sa.Text(), nullable=True),
        sa.Column("checkout_completed", sa.Boolean(), nullable=False),
        sa.Column("pages_visited", sa.Integer(), nullable=True),
        sa.Column("time_to_conversion_s", sa.Float(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.UniqueConstraint("tenant_id", "bot_id", "external_id",
                            name="uq_conversions_external"),
    )
    op.create_index("ix_conversions_tenant_bot_ts", "conversions", ["tenant_id", "bot_id", "ts"])
    op.create_index("ix_conversions_member", "conversions", ["tenant_id", "member_id", "ts"])
    op.create_table(
        "monetization_events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("conversion_id", sa.BigInteger(), nullable=False),
        sa.Column("interaction_id", sa.BigInteger(), nullable=True),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.UniqueConstraint("conversion_id", name="uq_monetization_conversion"),
    )
    op.create_index("ix_monetization_tenant_bot_ts", "monetization_events",
                    ["tenant_id", "bot_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_monetization_tenant_bot_ts", table_name="monetization_events")
    op.drop_table("monetization_events")
    op.drop_index("ix_conversions_member", table_name="conversions")
    op.drop_index("ix_conversions_tenant_bot_ts", table_name="conversions")
    op.drop_table("conversions")
