"""The optimizer's input: one tenant's interactions, purchases, members and blocks over a
period, as pandas frames, and the sessions built from them.

:func:`load_data` reads them with SQLAlchemy Core from the tables and columns the metric
contract documents (KPIS.md, docs/schema.md), so the optimizer needs no code of the
plugin; :class:`OptimizerData` can as well be built from frames directly (tests,
notebooks, other storage).

Sessions follow KPIS.md: the interactions of one member in one chat, in time order, each
at most ``session_timeout`` after the previous. Sessions are cut at the period's edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

#: Columns of the frames, in order.
INTERACTION_COLUMNS = ("id", "bot_id", "ts", "member_id", "chat_id", "intent", "sentiment",
                       "sentiment_score", "handled", "escalated", "text", "response_text")
CONVERSION_COLUMNS = ("bot_id", "ts", "member_id", "interaction_id", "outcome", "value",
                      "currency")
MEMBER_COLUMNS = ("bot_id", "member_id", "first_seen", "campaign")
BLOCK_COLUMNS = ("bot_id", "member_id", "ts")


def _frame(rows: Sequence[Sequence[Any]] | pd.DataFrame | None,
           columns: Sequence[str]) -> pd.DataFrame:
    if rows is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    if isinstance(rows, pd.DataFrame):
        missing = [c for c in columns if c not in rows.columns]
        if missing:
            raise ValueError(f"frame lacks the columns {', '.join(missing)}")
        return rows.loc[:, list(columns)].reset_index(drop=True)
    return pd.DataFrame.from_records(list(rows), columns=list(columns))


def _utc(series: pd.Series) -> pd.Series:
    if series.empty:
        return pd.Series(pd.DatetimeIndex([], tz=UTC), index=series.index)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.tz_localize(UTC) if series.dt.tz is None else series.dt.tz_convert(UTC)
    return pd.to_datetime(series, utc=True, format="ISO8601")


@dataclass
class OptimizerData:
    """One tenant's rows for one period ``[start, end)``.

    ``interactions``: ``id, bot_id, ts, member_id, chat_id, intent, sentiment,
    sentiment_score, handled, escalated, text, response_text`` (text columns may be
    empty). ``purchases``: conversions with outcome ``purchased``: ``bot_id, ts,
    member_id, interaction_id, outcome, value, currency``. ``members``: ``bot_id,
    member_id, first_seen, campaign``. ``blocks``: ``bot_id, member_id, ts`` of members
    blocking the bot.
    """

    start: datetime
    end: datetime
    interactions: pd.DataFrame
    purchases: pd.DataFrame = field(default_factory=lambda: _frame(None, CONVERSION_COLUMNS))
    members: pd.DataFrame = field(default_factory=lambda: _frame(None, MEMBER_COLUMNS))
    blocks: pd.DataFrame = field(default_factory=lambda: _frame(None, BLOCK_COLUMNS))
    session_timeout: timedelta = timedelta(minutes=30)
    #: Revenue counts purchases in this currency only (default: the most frequent one),
    #: never a sum over currencies.
    currency: str | None = None
    _sessions: pd.DataFrame | None = field(default=None, repr=False)
    #: Derived tables the analyses share (filled on first use).
    cache: dict[object, object] = field(default_factory=dict, repr=False)

    @classmethod
    def from_rows(cls, start: datetime, end: datetime, interactions: Any, purchases: Any = None,
                  members: Any = None, blocks: Any = None, *,
                  session_timeout: timedelta = timedelta(minutes=30),
                  currency: str | None = None) -> OptimizerData:
        """Build from row tuples or frames with the documented columns."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware (UTC)")
        if end <= start:
            raise ValueError(f"the period is empty: end {end.isoformat()} is not after "
                             f"start {start.isoformat()}")
        inter = _frame(interactions, INTERACTION_COLUMNS)
        inter["ts"] = _utc(inter["ts"])
        inter["sentiment_score"] = pd.to_numeric(inter["sentiment_score"], errors="coerce")
        inter["handled"] = inter["handled"].fillna(False).astype(bool)
        inter["escalated"] = inter["escalated"].fillna(False).astype(bool)
        inter["chat_id"] = inter["chat_id"].where(inter["chat_id"].notna(), inter["member_id"])
        inter = inter[(inter["ts"] >= pd.Timestamp(start)) & (inter["ts"] < pd.Timestamp(end))]
        conv = _frame(purchases, CONVERSION_COLUMNS)
        conv = conv[conv["outcome"] == "purchased"].copy()
        conv["ts"] = _utc(conv["ts"])
        conv["value"] = pd.to_numeric(conv["value"], errors="coerce").fillna(0.0)
        mem = _frame(members, MEMBER_COLUMNS)
        mem["first_seen"] = _utc(mem["first_seen"])
        blk = _frame(blocks, BLOCK_COLUMNS)
        blk["ts"] = _utc(blk["ts"])
        if currency is None and not conv.empty and conv["currency"].notna().any():
            currency = str(conv["currency"].value_counts().idxmax())
        return cls(start, end, inter.reset_index(drop=True), conv.reset_index(drop=True), mem,
                   blk, session_timeout, currency)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400.0

    @property
    def weeks(self) -> float:
        return self.days / 7.0

    def purchase_value(self) -> pd.Series:
        """Each purchase's value in the chosen currency (0 for other currencies)."""
        p = self.purchases
        if self.currency is None:
            return pd.Series(0.0, index=p.index)
        return p["value"].where(p["currency"] == self.currency, 0.0).astype(float)

    @property
    def sessions(self) -> pd.DataFrame:
        """The interactions in session order with their session's columns (built once).

        Added columns: ``session`` (0..n-1), ``pos`` (position in the session),
        ``trigger_value`` (value of the purchases this interaction triggered),
        ``is_trigger``, ``before_purchase`` (at or before the session's first purchase
        trigger, or anywhere in a session without one), ``converted`` and ``revenue``
        (of the session), ``start`` (the session's first timestamp)."""
        if self._sessions is None:
            self._sessions = build_sessions(self.interactions, self.purchases,
                                            self.purchase_value(), self.session_timeout)
        return self._sessions

    def session_table(self) -> pd.DataFrame:
        """One row per session: ``member_id, chat_id, start, interactions, converted,
        revenue, escalated``."""
        cached = self.cache.get("session_table")
        if cached is not None:
            assert isinstance(cached, pd.DataFrame)
            return cached
        table = self._session_table()
        self.cache["session_table"] = table
        return table

    def _session_table(self) -> pd.DataFrame:
        s = self.sessions
        if s.empty:
            return pd.DataFrame(columns=["member_id", "chat_id", "start", "interactions",
                                         "converted", "revenue", "escalated"])
        g = s.groupby("session", sort=True)
        return pd.DataFrame({
            "member_id": g["member_id"].first(), "chat_id": g["chat_id"].first(),
            "start": g["start"].first(), "interactions": g.size(),
            "converted": g["converted"].first(), "revenue": g["revenue"].first(),
            "escalated": g["escalated"].any()})


def build_sessions(interactions: pd.DataFrame, purchases: pd.DataFrame,
                   purchase_values: pd.Series, timeout: timedelta) -> pd.DataFrame:
    """Sessionise ``interactions`` (see :attr:`OptimizerData.sessions`)."""
    df = interactions.sort_values(["member_id", "chat_id", "ts", "id"], kind="stable"
                                  ).reset_index(drop=True)
    if df.empty:
        for col in ("session", "pos", "trigger_value", "is_trigger", "before_purchase",
                    "converted", "revenue", "start"):
            df[col] = pd.Series(dtype=float)
        return df
    key_change = (df["member_id"].ne(df["member_id"].shift())
                  | df["chat_id"].ne(df["chat_id"].shift()))
    gap = df["ts"].diff() > pd.Timedelta(timeout)
    df["session"] = np.cumsum((key_change | gap).to_numpy()) - 1
    df["pos"] = df.groupby("session").cumcount()
    triggered = pd.DataFrame({"id": purchases["interaction_id"],
                              "value": purchase_values.to_numpy()}).dropna(subset=["id"])
    triggered["id"] = triggered["id"].astype(df["id"].dtype)
    per_trigger = triggered.groupby("id")["value"].agg(["sum", "size"])
    df["is_trigger"] = df["id"].isin(per_trigger.index)
    df["trigger_value"] = df["id"].map(per_trigger["sum"]).fillna(0.0)
    g = df.groupby("session")
    df["converted"] = g["is_trigger"].transform("any")
    df["revenue"] = g["trigger_value"].transform("sum")
    df["start"] = g["ts"].transform("min")
    first_trigger = df["pos"].where(df["is_trigger"]).groupby(df["session"]).transform("min")
    df["before_purchase"] = first_trigger.isna() | (df["pos"] <= first_trigger)
    return df


# -- reading the database --------------------------------------------------------------------
def _tables() -> dict[str, Any]:
    import sqlalchemy as sa

    def t(name: str, *cols: str) -> Any:
        return sa.table(name, *(sa.column(c) for c in cols))

    return {
        "interactions": t("interactions", "tenant_id", *INTERACTION_COLUMNS, "event_type"),
        "conversions": t("conversions", "tenant_id", *CONVERSION_COLUMNS),
        "members": t("members", "tenant_id", *MEMBER_COLUMNS),
        "member_events": t("member_events", "tenant_id", "bot_id", "member_id", "ts", "kind"),
    }


#: Rows read from the database at a time.
CHUNK = 100_000


def _read_interactions(conn: Any, stmt: Any) -> pd.DataFrame:
    """Interactions in chunks: each chunk's repeated strings (intents, labels, replies,
    the commonest texts) become one shared object each, so a million rows cost tens of
    megabytes, not the driver's gigabyte of tuples."""
    # Straight from the driver's cursor: SQLAlchemy's per-row result handling cost more
    # than the query.
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.params
    args: Any = ([params[k] for k in compiled.positiontup] if compiled.positiontup
                 else params)
    cursor = conn.connection.cursor()
    frames: list[pd.DataFrame] = []
    try:
        cursor.execute(str(compiled), args)
        while part := cursor.fetchmany(CHUNK):
            frame = pd.DataFrame.from_records(part, columns=list(INTERACTION_COLUMNS))
            frame["ts"] = _utc(frame["ts"])
            for column in ("intent", "sentiment", "text", "response_text"):
                frame[column] = frame[column].astype("category").astype(object)
            frames.append(frame)
    finally:
        cursor.close()
    if not frames:
        return _frame(None, INTERACTION_COLUMNS)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _time_param(dialect: str, value: datetime) -> Any:
    # SQLite keeps UTC wall time as text in SQLAlchemy's format, so text order is time order.
    if dialect == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_data(source: Any, tenant_id: str, start: datetime, end: datetime, *,
              bot_id: int | None = None, session_timeout: timedelta = timedelta(minutes=30),
              attribution_window: timedelta = timedelta(hours=24),
              currency: str | None = None, with_text: bool = True) -> OptimizerData:
    """Read one tenant's period from a database (an SQLAlchemy ``Engine``,
    ``Connection`` or ``Session``). ``bot_id`` limits it to one bot. Purchases are those
    whose trigger interaction lies in the period (they may come up to the attribution
    window later). ``with_text=False`` skips message and reply texts."""
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine

    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (UTC)")
    if isinstance(source, Engine):
        with source.connect() as conn:
            return load_data(conn, tenant_id, start, end, bot_id=bot_id,
                             session_timeout=session_timeout,
                             attribution_window=attribution_window, currency=currency,
                             with_text=with_text)
    if not isinstance(source, Connection):
        connection = getattr(source, "connection", None)
        if connection is None:
            raise TypeError(f"expected an SQLAlchemy Engine, Connection or Session, got "
                            f"{type(source).__name__}")
        return load_data(connection(), tenant_id, start, end, bot_id=bot_id,
                         session_timeout=session_timeout,
                         attribution_window=attribution_window, currency=currency,
                         with_text=with_text)
    conn = source
    dialect = conn.dialect.name
    T = _tables()
    lo, hi = _time_param(dialect, start), _time_param(dialect, end)

    def rows(stmt: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(stmt)]

    i = T["interactions"].c
    cols = [i[c] for c in INTERACTION_COLUMNS[:10]]
    cols += [i.text, i.response_text] if with_text else [sa.null(), sa.null()]
    where = [i.tenant_id == tenant_id, i.ts >= lo, i.ts < hi]
    if bot_id is not None:
        where.append(i.bot_id == bot_id)
    inter = _read_interactions(conn, sa.select(*cols).where(*where))
    c = T["conversions"].c
    cwhere = [c.tenant_id == tenant_id, c.outcome == "purchased", c.ts >= lo,
              c.ts < _time_param(dialect, end + attribution_window)]
    if bot_id is not None:
        cwhere.append(c.bot_id == bot_id)
    conv = rows(sa.select(*(c[x] for x in CONVERSION_COLUMNS)).where(*cwhere))
    m = T["members"].c
    mwhere = [m.tenant_id == tenant_id, m.first_seen < hi]
    if bot_id is not None:
        mwhere.append(m.bot_id == bot_id)
    mem = rows(sa.select(*(m[x] for x in MEMBER_COLUMNS)).where(*mwhere))
    e = T["member_events"].c
    ewhere = [e.tenant_id == tenant_id, e.kind == "blocked", e.ts >= lo,
              e.ts < _time_param(dialect, end + session_timeout)]
    if bot_id is not None:
        ewhere.append(e.bot_id == bot_id)
    blk = rows(sa.select(e.bot_id, e.member_id, e.ts).where(*ewhere))
    # Only purchases triggered by the period's interactions (the currency is chosen
    # from these).
    known = set(inter["id"])
    trigger = CONVERSION_COLUMNS.index("interaction_id")
    conv = [r for r in conv if r[trigger] in known]
    return OptimizerData.from_rows(start, end, inter, conv, mem, blk,
                                   session_timeout=session_timeout, currency=currency)
