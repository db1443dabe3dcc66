"""CSAT ratings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("ts", TS, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("csat_rating", sa.SmallInteger(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.UniqueConstraint("tenant_id", "bot_id", "update_id", name="uq_feedback_update"),
    )
    op.create_index("ix_feedback_tenant_bot_ts", "feedback", ["tenant_id", "bot_id", "ts"])
    op.create_index("ix_feedback_member", "feedback", ["tenant_id", "member_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_feedback_member", table_name="feedback")
    op.drop_index("ix_feedback_tenant_bot_ts", table_name="feedback")
    op.drop_table("feedback")
