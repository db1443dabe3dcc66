"""KPI rollups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("metric_category", sa.String(32), nullable=False),
        sa.Column("metric_type", sa.String(48), nullable=False),
        sa.Column("metric_value", sa.Float(), nullable=False),
        sa.Column("aggregation_period", sa.String(8), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimension", sa.String(128), nullable=True),
        sa.Column("sample_size", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kpi_lookup", "kpi_metrics",
                    ["tenant_id", "bot_id", "aggregation_period", "period_start",
                     "metric_type"])


def downgrade() -> None:
    op.drop_index("ix_kpi_lookup", table_name="kpi_metrics")
    op.drop_table("kpi_metrics")
