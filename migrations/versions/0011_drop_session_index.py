"""Drop the index on interactions.session_id. Session ids begin with the bot and the
chat, so the rows of every batch went to pages all over that index, and keeping it up
took about a tenth of the writer's time. A session's rows are found through (tenant, bot,
member, time), as the id names its member: the count of the pages a buyer saw in the
session of a purchase names the member for this.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_interactions_session_id", table_name="interactions")


def downgrade() -> None:
    op.create_index("ix_interactions_session_id", "interactions", ["session_id"])
