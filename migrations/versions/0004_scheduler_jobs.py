"""The scheduler's persistent job store (APScheduler's own table layout).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_analytics_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_bot_analytics_jobs_next_run_time", "bot_analytics_jobs",
                    ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_bot_analytics_jobs_next_run_time", table_name="bot_analytics_jobs")
    op.drop_table("bot_analytics_jobs")
