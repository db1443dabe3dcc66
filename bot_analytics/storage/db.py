"""Engines, connection settings, migrations, and the few statements whose SQL differs
between SQLite and PostgreSQL. Everything dialect-specific lives here."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .models import metadata, naive_datetime_error

log = logging.getLogger("bot_analytics.storage")


def _null(_value: None) -> None:
    return None


def register_sqlite_adapters() -> None:
    """Give Python's ``sqlite3`` an adapter for None and for bools, which bind what it
    binds without them (NULL; 0 and 1). Without a registered adapter, ``sqlite3`` asks
    its protocol class for ``__adapt__`` for each None or bool parameter, and that failed
    lookup on a class formats an AttributeError message before it is dropped. The writer
    binds about ten such parameters an interaction: with the adapters,
    ``benchmarks/count_writer.py`` counted 241,700 machine instructions an event instead
    of 260,800. The adapters are process-wide, as ``sqlite3``'s registry is; an adapter
    the application registered for either type stays."""
    if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _null)
    if (bool, sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(bool, int)


def create_db_engine(url: str, *, echo: bool = False, busy_timeout_ms: int = 5000) -> Engine:
    """Create an engine; SQLite gets WAL mode, a busy timeout and NORMAL sync."""
    if url.startswith("sqlite"):
        register_sqlite_adapters()
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
            # Copy the write-ahead log into the database every 10,000 pages (40 MiB)
            # instead of 1,000: the index pages each batch touches are then written
            # back once per checkpoint rather than again and again.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
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
_COMPILED: dict[tuple[str, str, str], tuple[str, tuple[str, ...], tuple[int, ...], bool]] = {}


def _checked_ts(value: Any) -> Any:
    """A timestamp as PostgreSQL's driver takes it: an aware datetime, unchanged."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise naive_datetime_error(value)
    return value


def _sqlite_ts(value: Any) -> Any:
    """A timestamp as SQLAlchemy stores DATETIME on SQLite: UTC wall time as the text
    'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if not isinstance(value, datetime):
        return value
    return _sqlite_text(value)


#: The text of each second seen lately, 'YYYY-MM-DD HH:MM:SS.', keyed by (second, minute,
#: hour, day, month, year) in UTC: formatting a datetime's fields goes through
#: ``PyUnicode_FromFormat``, which took four times as many instructions as this lookup
#: and the microseconds appended to it (counted with callgrind).
_SECOND_TEXT: dict[tuple[int, int, int, int, int, int], str] = {}


def _sqlite_text(value: datetime) -> str:
    """:func:`_sqlite_ts` of an aware datetime; a naive one raises."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise naive_datetime_error(value)
        value = value.astimezone(UTC)
    key = (value.second, value.minute, value.hour, value.day, value.month, value.year)
    prefix = _SECOND_TEXT.get(key)
    if prefix is None:
        if len(_SECOND_TEXT) >= 4096:  # a long-running writer sees a new second each second
            _SECOND_TEXT.clear()
        prefix = _SECOND_TEXT[key] = \
            value.replace(microsecond=0, tzinfo=None).isoformat(" ") + "."
    return prefix + str(1_000_000 + value.microsecond)[1:]


def _ts_converter(dialect: Any) -> Callable[[Any], Any]:
    """How a timestamp parameter goes to ``dialect``'s driver (other values pass as they
    are)."""
    return _sqlite_ts if dialect.name == "sqlite" else _checked_ts


def _is_timestamp(column_type: Any) -> bool:
    """Whether a column stores timestamps: a DateTime, or a type decorating one."""
    return isinstance(getattr(column_type, "impl", column_type), sa.DateTime)


def _bulk(conn: Connection, name: str, stmt: Any, table: sa.Table, columns: Sequence[str],
          rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``stmt`` once for all ``rows`` (mappings holding some or all of ``columns``).
    Values in the table's timestamp columns are converted for the driver; the others go
    as they are. Profiled, testing every value instead had taken a fifth of the writer's
    time; converting only those columns takes a twentieth."""
    dialect = conn.dialect
    key = (dialect.name, name, ",".join(columns))
    compiled = _COMPILED.get(key)
    if compiled is None:
        c = stmt.compile(dialect=dialect, column_keys=list(columns))
        positional = bool(c.positional and c.positiontup)
        keys = tuple(c.positiontup) if positional else tuple(columns)
        times = {col.name for col in table.columns if _is_timestamp(col.type)}
        compiled = _COMPILED[key] = (c.string, keys, tuple(
            i for i, k in enumerate(keys) if k in times), positional)
    sql, keys, time_at, positional = compiled
    convert = _ts_converter(dialect)
    # All of a row's values in one C call; a row without some of the columns (None for
    # them) goes the slow way.
    pick = itemgetter(*keys) if len(keys) > 1 else (lambda r: (r[keys[0]],))
    params: list[Any] = []
    append = params.append
    for r in rows:
        try:
            values = pick(r)
        except KeyError:
            values = tuple(r.get(k) for k in keys)
        if time_at:
            listed = list(values)
            for i in time_at:
                listed[i] = convert(listed[i])
            values = tuple(listed)
        append(values if positional else dict(zip(keys, values, strict=True)))
    conn.exec_driver_sql(sql, params)


def raw_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Run a select on the DB-API cursor and return plain tuples: for reads of a million
    rows, where SQLAlchemy's row objects cost more than the query. Parameters are
    converted as the batch writes convert them; results come back as the driver gives
    them (timestamps are text on SQLite)."""
    compiled = stmt.compile(dialect=conn.dialect,
                            compile_kwargs={"render_postcompile": True})  # IN (...) lists
    convert = _ts_converter(conn.dialect)
    values = {k: convert(v) for k, v in compiled.params.items()}
    params: Any = (tuple(values[k] for k in compiled.positiontup)
                   if compiled.positional and compiled.positiontup else values)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def epoch_micros(conn: Connection, column: Any) -> Any:
    """A timestamp column as exact integer microseconds since the Unix epoch, computed
    by the database (SQLite keeps SQLAlchemy's text form 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    if conn.dialect.name == "sqlite":
        # Whole seconds from the text without its fraction: SQLite's date functions keep
        # milliseconds only and would round 23:59:59.9995 up into the next second.
        return (sa.cast(sa.func.strftime("%s", sa.func.substr(column, 1, 19)), sa.BigInteger)
                * 1_000_000
                + sa.cast(sa.func.substr(column, 21, 6), sa.BigInteger))
    return sa.cast(sa.func.round(sa.extract("epoch", column) * 1_000_000), sa.BigInteger)


#: What ``read_columns`` can return for a selected column, and the array type of each.
COLUMN_KINDS = ("int", "float", "text")
_COLUMN_DTYPES = {"int": "int64", "float": "float64", "text": "object"}


def read_columns(conn: Connection, stmt: sa.Select[Any], kinds: Sequence[str]
                 ) -> list[Any]:
    """Run a select and return its columns as arrays, not rows: for reads of a million
    rows, where building a Python tuple per row cost more than the query.

    ``kinds`` names each selected column's kind: ``int`` (never NULL; an int64 array),
    ``float`` (a float64 array, NULL as NaN) or ``text`` (an object array, NULL as
    None). Row order is the select's. PostgreSQL sends the rows with COPY as CSV;
    SQLite concatenates each column into one string (``group_concat``) in a single
    pass, so every column lists the same rows in the same order. SQLite writes floats
    with 17 significant digits, which gives back the very same double for magnitudes
    below 1e100 (durations, scores, money); beyond that its formatter can be one digit
    off, so such columns are better read with ``raw_rows``."""
    import numpy as np
    import pandas as pd

    bad = [k for k in kinds if k not in COLUMN_KINDS]
    if bad or len(kinds) != len(stmt.selected_columns):
        raise ValueError(f"read_columns: {len(stmt.selected_columns)} columns selected but "
                         f"kinds {list(kinds)!r} given (each one of {COLUMN_KINDS})")
    # Text travels with a leading '=' so that NULL ('') and '' ('=') stay apart.
    cols = [sa.func.coalesce(sa.literal("=") + c, "") if k == "text" else c
            for c, k in zip(stmt.selected_columns, kinds, strict=True)]
    inner = stmt.with_only_columns(*cols)
    if conn.dialect.name == "postgresql":
        return _read_columns_copy(conn, inner, kinds)
    q = inner.subquery()
    aggs: list[Any] = [sa.func.count()]
    for c, k in zip(q.c, kinds, strict=True):
        if k == "int":
            aggs.append(sa.func.group_concat(c, ","))
        elif k == "float":  # 17 significant digits (! lifts SQLite's cap of 16)
            aggs.append(sa.func.group_concat(sa.case(
                (c.is_(None), "nan"), else_=sa.func.printf("%!.17g", c)), ","))
        else:
            aggs.append(sa.func.group_concat(c, "\x1e"))
    row = conn.execute(sa.select(*aggs).select_from(q)).one()
    n = int(row[0])
    out: list[Any] = []
    for text, k in zip(row[1:], kinds, strict=True):
        if n == 0:
            out.append(np.empty(0, dtype=_COLUMN_DTYPES[k]))
            continue
        if k == "text":
            values = _decode_text(pd.Categorical(text.split("\x1e")))
        else:
            values = np.fromstring(text, sep=",", dtype=_COLUMN_DTYPES[k])
        if len(values) != n:
            raise ValueError(f"read_columns: a {k} column came back with {len(values)} of "
                             f"{n} values (a NULL integer, or a text holding U+001E)")
        out.append(values)
    return out


def _read_columns_copy(conn: Connection, stmt: sa.Select[Any], kinds: Sequence[str]
                       ) -> list[Any]:
    import io

    import numpy as np
    import pandas as pd

    compiled = stmt.compile(dialect=conn.dialect,
                            compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    buf = io.BytesIO()
    try:
        with cursor.copy(f"COPY ({compiled.string}) TO STDOUT (FORMAT csv)",
                         compiled.params) as copy:
            for chunk in copy:
                buf.write(chunk)
    finally:
        cursor.close()
    names = [f"c{i}" for i in range(len(kinds))]
    if buf.tell() == 0:
        return [np.empty(0, dtype=_COLUMN_DTYPES[k]) for k in kinds]
    buf.seek(0)
    # pandas 3 parses floats exactly by default and warns about the option.
    exact: dict[str, Any] = ({} if int(pd.__version__.split(".")[0]) >= 3
                             else {"float_precision": "round_trip"})
    frame = pd.read_csv(buf, header=None, names=names, keep_default_na=False, **exact,
                        na_values={n: [""] for n, k in zip(names, kinds, strict=True)
                                   if k == "float"},
                        dtype={n: "category" if k == "text" else _COLUMN_DTYPES[k]
                               for n, k in zip(names, kinds, strict=True)})
    out: list[Any] = []
    for name, k in zip(names, kinds, strict=True):
        column = frame[name]
        if k != "text":
            out.append(column.to_numpy())
            continue
        out.append(_decode_text(column.array))
    return out


def _decode_text(values: Any) -> Any:
    """'=text' -> 'text' and '' -> None, each distinct value decoded once."""
    import numpy as np

    decoded = np.array([None] + [v[1:] if v else None for v in values.categories],
                       dtype=object)
    return decoded[np.asarray(values.codes) + 1]


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping any that violate a unique constraint (redelivered updates)."""
    if rows:
        columns = [c.name for c in table.columns if c.name in rows[0]]
        _bulk(conn, f"insert_ignore:{table.name}", _insert(conn, table).on_conflict_do_nothing(),
              table, columns, rows)


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
    _bulk(conn, f"upsert:{table.name}", stmt, table, [c.name for c in table.columns], rows)


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
    _bulk(conn, f"upsert:{table.name}", stmt, table, [c.name for c in table.columns], rows)


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


def tenant_bot_pairs(conn: Connection, table: sa.Table, tenant_id: str | None = None
                     ) -> list[tuple[str, int]]:
    """The (tenant, bot) pairs of ``table`` (of one tenant when given), walked along an
    index that starts with (tenant_id, bot_id), one probe per step: the cost follows the
    number of bots, not of rows."""
    t = table.c
    pairs: list[tuple[str, int]] = []
    tenant = (tenant_id if tenant_id is not None
              else conn.execute(sa.select(sa.func.min(t.tenant_id))).scalar())
    while tenant is not None:
        bot = conn.execute(sa.select(sa.func.min(t.bot_id))
                           .where(t.tenant_id == tenant)).scalar()
        while bot is not None:
            pairs.append((tenant, int(bot)))
            bot = conn.execute(sa.select(sa.func.min(t.bot_id)).where(
                t.tenant_id == tenant, t.bot_id > bot)).scalar()
        tenant = None if tenant_id is not None else conn.execute(
            sa.select(sa.func.min(t.tenant_id)).where(t.tenant_id > tenant)).scalar()
    return pairs


def delete_member(conn: Connection, tenant_id: str | None, member_id: int) -> dict[str, int]:
    """Delete a member's rows from every table that has a ``member_id`` column;
    interactions bot by bot, as their member index starts with (tenant, bot): each
    delete is then an index lookup, not a scan of the tenant's rows."""
    deleted: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if "member_id" not in table.c or table.name in KEEP_ON_FORGET:
            continue
        t = table.c
        if table.name == "interactions":
            conds = [sa.and_(t.tenant_id == tenant, t.bot_id == bot, t.member_id == member_id)
                     for tenant, bot in tenant_bot_pairs(conn, table, tenant_id)]
        elif tenant_id is not None:
            conds = [sa.and_(t.member_id == member_id, t.tenant_id == tenant_id)]
        else:
            conds = [t.member_id == member_id]
        deleted[table.name] = sum(conn.execute(sa.delete(table).where(cond)).rowcount or 0
                                  for cond in conds)
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
