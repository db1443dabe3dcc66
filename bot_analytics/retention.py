"""Retention: raw rows older than ``retention.days`` are deleted in small batches, one
transaction each, so a purge never holds a long lock on a busy database. The rolled-up
``kpi_metrics`` (and conversions, experiments, optimizer runs) are kept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .storage.queries import FEEDBACK, INTERACTIONS, MEMBER_EVENTS

log = logging.getLogger("bot_analytics.retention")

#: The raw tables purged, with the columns that lead their time indexes.
RAW_TABLES = ((INTERACTIONS, ("tenant_id", "bot_id")), (MEMBER_EVENTS, ("tenant_id",)),
              (FEEDBACK, ("tenant_id", "bot_id")))


def purge(engine: Engine, days: float, now: datetime, *, batch_size: int = 5000,
          dry_run: bool = False, progress: Callable[[str, int], None] | None = None
          ) -> dict[str, int]:
    """Delete rows with ``ts`` before ``now - days`` from the raw tables; returns how
    many went per table (with ``dry_run``, how many would)."""
    if days <= 0:
        raise ValueError(f"retention days must be positive, got {days}")
    cutoff = now - timedelta(days=days)
    deleted: dict[str, int] = {}
    for table, keys in RAW_TABLES:
        total = 0
        with engine.connect() as conn:
            groups = [tuple(r) for r in conn.execute(
                sa.select(*(table.c[k] for k in keys)).distinct())]
        for group in groups:
            where = [table.c[k] == v for k, v in zip(keys, group, strict=True)]
            where.append(table.c.ts < cutoff)
            if dry_run:
                with engine.connect() as conn:
                    total += int(conn.execute(sa.select(sa.func.count())
                                              .select_from(table).where(*where)).scalar_one())
                continue
            while True:
                # Each batch in a transaction of its own: the bot's writer waits at most
                # for one batch.
                with engine.begin() as conn:
                    ids = sa.select(table.c.id).where(*where).limit(batch_size)
                    n = conn.execute(sa.delete(table).where(
                        table.c.id.in_(ids.scalar_subquery()))).rowcount or 0
                total += n
                if progress is not None and n:
                    progress(table.name, n)
                if n < batch_size:
                    break
        deleted[table.name] = total
        if total:
            log.info("retention: %s %d rows of %s older than %s", "would delete" if dry_run
                     else "deleted", total, table.name, cutoff.isoformat())
    return deleted
