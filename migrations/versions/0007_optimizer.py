"""Optimizer runs and member segments.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "optimization_runs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=True),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("period_end", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("interactions", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("recommendations", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_optimization_runs_tenant", "optimization_runs",
                    ["tenant_id", "created_at"])
    op.create_table(
        "member_segments",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), primary_key=True),
        sa.Column("segment", sa.String(128), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member_segments")
    op.drop_index("ix_optimization_runs_tenant", table_name="optimization_runs")
    op.drop_table("optimization_runs")
