"""An index on (tenant, bot, member, time) for the questions rollups ask of a member's
history: was this member seen before the period (new users, cohorts), and how many
members were seen before its end (retention). Without it both planners walked the
(tenant, bot, time) index through every earlier row of the bot.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_interactions_bot_member_ts", "interactions",
                    ["tenant_id", "bot_id", "member_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_interactions_bot_member_ts", table_name="interactions")
