"""A/B experiments and their members' assignments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
        sa.Column("winner", sa.String(32), nullable=True),
        sa.UniqueConstraint("tenant_id", "name", name="uq_experiments_name"),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.BigInteger(), primary_key=True),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("first_exposed_at", TS, nullable=False),
        sa.Column("last_exposed_at", TS, nullable=False),
        sa.Column("exposures", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_assignments_variant", "experiment_assignments",
                    ["tenant_id", "experiment", "variant", "first_exposed_at", "exposures"])


def downgrade() -> None:
    op.drop_index("ix_assignments_variant", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
    op.drop_table("experiments")
