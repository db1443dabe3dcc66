"""Drop the (tenant, member, chat, time) index on interactions. Every query of a
member's rows names the bot as well and uses (tenant, bot, member, time) from 0009;
keeping both made each insert update one index more than needed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_interactions_member", table_name="interactions")


def downgrade() -> None:
    op.create_index("ix_interactions_member", "interactions",
                    ["tenant_id", "member_id", "chat_id", "ts"])
