"""Writes of prepared batches, session assignment, and small reads used by the plugin."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import insert_ignore, upsert_members
from .models import Interaction, Member, MemberEventRow, OptOut

INTERACTIONS = Interaction.__table__  # type: ignore[attr-defined]
MEMBERS = Member.__table__  # type: ignore[attr-defined]
MEMBER_EVENTS = MemberEventRow.__table__  # type: ignore[attr-defined]
OPT_OUTS = OptOut.__table__  # type: ignore[attr-defined]

SessionKey = tuple[str, int, int, int]  # tenant, bot, session chat, member


def session_chat(chat_id: int | None, member_id: int) -> int:
    """The chat a session is kept in. Interactions without a chat (inline queries,
    pre-checkout queries, poll answers) belong to the member's private chat with the
    bot, whose id is the member's id."""
    return member_id if chat_id is None else chat_id


def session_id_for(bot_id: int, chat_id: int, member_id: int, start: datetime) -> str:
    """Deterministic id of the session a member starts in a chat at ``start``."""
    return f"{bot_id}-{chat_id}-{member_id}-{int(start.timestamp() * 1000)}"


class Sessionizer:
    """Assigns ``session_id`` online: an interaction joins the member's open session in
    that chat when it follows the previous one by at most the timeout.

    Known sessions are cached (bounded LRU); on a miss the member's latest stored
    interaction in the chat is read, so a restart continues open sessions.
    """

    def __init__(self, timeout: timedelta, capacity: int = 100_000):
        self.timeout = timeout
        self.capacity = capacity
        self._cache: OrderedDict[SessionKey, tuple[str, datetime]] = OrderedDict()

    def _lookup(self, conn: Connection, key: SessionKey, ts: datetime
                ) -> tuple[str, datetime] | None:
        tenant, bot, chat, member = key
        t = INTERACTIONS.c
        chat_cond = sa.func.coalesce(t.chat_id, t.member_id) == chat
        row = conn.execute(
            sa.select(t.session_id, t.ts)
            .where(t.tenant_id == tenant, t.member_id == member, chat_cond, t.bot_id == bot,
                   t.ts <= ts, t.session_id.is_not(None))
            .order_by(t.ts.desc()).limit(1)
        ).first()
        return (row[0], row[1]) if row else None

    def assign(self, conn: Connection, rows: list[dict[str, Any]]
               ) -> dict[SessionKey, tuple[str, datetime]]:
        """Set ``session_id`` on rows (in time order); returns the cache updates to
        commit once the transaction has succeeded."""
        pending: dict[SessionKey, tuple[str, datetime]] = {}
        for row in sorted(rows, key=lambda r: r["ts"]):
            key = (row["tenant_id"], row["bot_id"],
                   session_chat(row["chat_id"], row["member_id"]), row["member_id"])
            ts = row["ts"]
            state = pending.get(key) or self._cache.get(key)
            if state is None:
                state = self._lookup(conn, key, ts)
            if state is not None and ts - state[1] <= self.timeout:
                # Late arrivals (ts before the last one) stay in the open session.
                sid, last = state[0], max(state[1], ts)
            else:
                sid, last = session_id_for(row["bot_id"], key[2], row["member_id"], ts), ts
            row["session_id"] = sid
            pending[key] = (sid, last)
        return pending

    def commit(self, updates: dict[SessionKey, tuple[str, datetime]]) -> None:
        cache = self._cache
        for key, value in updates.items():
            cache[key] = value
            cache.move_to_end(key)
        while len(cache) > self.capacity:
            cache.popitem(last=False)

    def forget(self, member_id: int) -> None:
        for key in [k for k in self._cache if k[3] == member_id]:
            del self._cache[key]


class BatchStore:
    """The only writer of captured rows: one transaction per batch."""

    def __init__(self, engine: Engine, session_timeout: timedelta):
        self.engine = engine
        self.sessions = Sessionizer(session_timeout)

    def write(self, interactions: list[dict[str, Any]], members: list[dict[str, Any]],
              member_events: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            updates = self.sessions.assign(conn, interactions)
            insert_ignore(conn, INTERACTIONS, interactions)
            upsert_members(conn, MEMBERS, members)
            insert_ignore(conn, MEMBER_EVENTS, member_events)
            self._apply_blocks(conn, member_events)
        self.sessions.commit(updates)

    @staticmethod
    def _apply_blocks(conn: Connection, member_events: Sequence[dict[str, Any]]) -> None:
        latest: dict[tuple[str, int, int], bool] = {}
        for ev in sorted(member_events, key=lambda e: e["ts"]):
            if ev["kind"] in ("blocked", "unblocked"):
                latest[(ev["tenant_id"], ev["bot_id"], ev["member_id"])] = \
                    ev["kind"] == "blocked"
        m = MEMBERS.c
        for (tenant, bot, member), blocked in latest.items():
            conn.execute(sa.update(MEMBERS).where(
                m.tenant_id == tenant, m.bot_id == bot, m.member_id == member
            ).values(blocked=blocked))

    # -- opt-out ---------------------------------------------------------------------
    def set_opt_out(self, tenant_id: str, member_id: int, opted_out: bool, ts: datetime,
                    bot_id: int | None = None) -> None:
        with self.engine.begin() as conn:
            if opted_out:
                insert_ignore(conn, OPT_OUTS, [{"tenant_id": tenant_id, "member_id": member_id,
                                                "ts": ts}])
            else:
                conn.execute(sa.delete(OPT_OUTS).where(OPT_OUTS.c.tenant_id == tenant_id,
                                                       OPT_OUTS.c.member_id == member_id))
            conn.execute(sa.update(MEMBERS).where(
                MEMBERS.c.tenant_id == tenant_id, MEMBERS.c.member_id == member_id
            ).values(opted_out=opted_out))
            if bot_id is not None:
                insert_ignore(conn, MEMBER_EVENTS, [{
                    "tenant_id": tenant_id, "bot_id": bot_id, "update_id": None, "ts": ts,
                    "member_id": member_id, "chat_id": None,
                    "kind": "opt_out" if opted_out else "opt_in", "payload": None}])

    def load_opt_outs(self) -> set[tuple[str, int]]:
        with self.engine.connect() as conn:
            return {(r[0], r[1]) for r in conn.execute(
                sa.select(OPT_OUTS.c.tenant_id, OPT_OUTS.c.member_id))}
