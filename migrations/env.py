"""Alembic environment: ``bot-analytics db upgrade`` runs this with a live connection.

Run plain ``alembic`` from the repository root with ``-x url=...`` or
``BOT_ANALYTICS_DATABASE_URL`` set to work on the migrations themselves.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from bot_analytics.storage.models import metadata

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ["BOT_ANALYTICS_DATABASE_URL"]
    context.configure(url=url, target_metadata=metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or config.get_main_option("sqlalchemy.url")
           or os.environ["BOT_ANALYTICS_DATABASE_URL"])
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
