"""Engines, connection settings, migrations, and the few statements whose SQL differs
between SQLite and PostgreSQL. Everything dialect-specific lives here."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .models import metadata

log = logging.getLogger("bot_analytics.storage")


def create_db_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = 5000) -> Engine:
    """Create an engine; SQLite gets WAL mode, a busy timeout and NORMAL sync."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo,
                                  connect_args={"timeout": busy_timeout_ms / 1000})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            # 64 MiB of page cache (the default is 2 MiB): index upkeep of a growing
            # interactions table otherwise reads pages back from disk on every batch.
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database dialect {conn.dialect.name!r} is not supported")


# The batch statements are compiled once per dialect and run with driver-ready values:
# SQLAlchemy's per-row parameter processing cost as much as the insert itself.
_COMPILED: dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None]] = {}
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format


def _driver_value(value: Any, sqlite_dialect: bool) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: bot-analytics stores aware UTC times")
        if sqlite_dialect:
            return value.astimezone(UTC).strftime(_SQLITE_TS)
        return value
    return value


def _bulk(conn: Connection, name: str, stmt: Any, columns: Sequence[str],
          rows: Sequence[Mapping[str, Any]]) -> None:
    dialect = conn.dialect
    key = (dialect.name, name, ",".join(columns))
    compiled = _COMPILED.get(key)
    if compiled is None:
        c = stmt.compile(dialect=dialect, column_keys=list(columns))
        order = tuple(c.positiontup) if c.positional and c.positiontup else None
        compiled = _COMPILED[key] = (c.string, order)
    sql, order = compiled
    lite = dialect.name == "sqlite"
    if order is not None:
        params: list[Any] = [tuple(_driver_value(r.get(k), lite) for k in order) for r in rows]
    else:
        params = [{k: _driver_value(r.get(k), lite) for k in columns} for r in rows]
    conn.exec_driver_sql(sql, params)


def raw_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Run a select on the DB-API cursor and return plain tuples: for reads of a million
    rows, where SQLAlchemy's row objects cost more than the query. Parameters are
    converted as the batch writes convert them; results come back as the driver gives
    them (timestamps are text on SQLite)."""
    compiled = stmt.compile(dialect=conn.dialect,
                            compile_kwargs={"render_postcompile": True})  # IN (...) lists
    lite = conn.dialect.name == "sqlite"
    values = {k: _driver_value(v, lite) for k, v in compiled.params.items()}
    params: Any = (tuple(values[k] for k in compiled.positiontup)
                   if compiled.positional and compiled.positiontup else values)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping any that violate a unique constraint (redelivered updates)."""
    if rows:
        columns = [c.name for c in table.columns if c.name in rows[0]]
        _bulk(conn, f"insert_ignore:{table.name}", _insert(conn, table).on_conflict_do_nothing(),
              columns, rows)


def insert_ignore_returning_id(conn: Connection, table: sa.Table,
                               row: Mapping[str, Any]) -> int | None:
    """Insert one row; its id, or None when a unique constraint made it a duplicate."""
    stmt = _insert(conn, table).values(**row).on_conflict_do_nothing().returning(table.c.id)
    value = conn.execute(stmt).scalar()
    return None if value is None else int(value)


def _greatest_least(conn: Connection) -> tuple[Any, Any]:
    """Two-argument max and min: GREATEST/LEAST on PostgreSQL, scalar MAX/MIN on SQLite."""
    if conn.dialect.name == "postgresql":
        return sa.func.greatest, sa.func.least
    return sa.func.max, sa.func.min


def upsert_members(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert members or widen their first/last seen; keep the first campaign."""
    if not rows:
        return
    stmt = _insert(conn, table)
    ex = stmt.excluded
    greatest, least = _greatest_least(conn)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "bot_id", "member_id"],
        set_={
            "first_seen": least(table.c.first_seen, ex.first_seen),
            "last_seen": greatest(table.c.last_seen, ex.last_seen),
            "language_code": sa.func.coalesce(ex.language_code, table.c.language_code),
            "campaign": sa.func.coalesce(table.c.campaign, ex.campaign),
        },
    )
    _bulk(conn, f"upsert:{table.name}", stmt, [c.name for c in table.columns], rows)


def upsert_assignments(conn: Connection, table: sa.Table,
                       rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert experiment assignments or add to their exposure counts; the variant and
    the bot of the first exposure stay."""
    if not rows:
        return
    stmt = _insert(conn, table)
    ex = stmt.excluded
    greatest, least = _greatest_least(conn)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "experiment", "member_id"],
        set_={
            "first_exposed_at": least(table.c.first_exposed_at, ex.first_exposed_at),
            "last_exposed_at": greatest(table.c.last_exposed_at, ex.last_exposed_at),
            "exposures": table.c.exposures + ex.exposures,
        },
    )
    _bulk(conn, f"upsert:{table.name}", stmt, [c.name for c in table.columns], rows)


def day_of(conn: Connection, column: Any) -> Any:
    """The UTC calendar day of a timestamp expression, as 'YYYY-MM-DD' text."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(column, 1, 10)  # SQLite keeps UTC wall time as ISO text


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Any:
    from alembic.config import Config

    location = resources.files("bot_analytics.migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


#: Tables ``forget`` keeps: an opt-out is the member's standing choice, not their data.
KEEP_ON_FORGET = frozenset({"opt_outs"})


def delete_member(conn: Connection, tenant_id: str | None, member_id: int) -> dict[str, int]:
    """Delete a member's rows from every table that has a ``member_id`` column."""
    deleted: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if "member_id" not in table.c or table.name in KEEP_ON_FORGET:
            continue
        cond = table.c.member_id == member_id
        if tenant_id is not None:
            cond = sa.and_(cond, table.c.tenant_id == tenant_id)
        result = conn.execute(sa.delete(table).where(cond))
        deleted[table.name] = result.rowcount or 0
    return deleted



class RunLock:
    """Keeps several bot processes from running the same job at once: a PostgreSQL
    session advisory lock; on SQLite (one process writes) always granted."""

    def __init__(self, engine: Engine, name: str):
        self.engine = engine
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big",
                                  signed=True)
        self._conn: Connection | None = None

    def __enter__(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True
        self._conn = self.engine.connect()
        got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                 {"k": self.key}).scalar()
        return bool(got)

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.close()
            self._conn = None
