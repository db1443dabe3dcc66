"""Writes of prepared batches, session assignment, and small reads used by the plugin."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import insert_ignore, insert_ignore_returning_id, upsert_assignments, upsert_members
from .models import (
    Conversion,
    Experiment,
    ExperimentAssignment,
    Feedback,
    Interaction,
    Member,
    MemberEventRow,
    MonetizationEvent,
    OptOut,
)

INTERACTIONS = Interaction.__table__  # type: ignore[attr-defined]
MEMBERS = Member.__table__  # type: ignore[attr-defined]
MEMBER_EVENTS = MemberEventRow.__table__  # type: ignore[attr-defined]
OPT_OUTS = OptOut.__table__  # type: ignore[attr-defined]
CONVERSIONS = Conversion.__table__  # type: ignore[attr-defined]
MONETIZATION = MonetizationEvent.__table__  # type: ignore[attr-defined]
EXPERIMENTS = Experiment.__table__  # type: ignore[attr-defined]
ASSIGNMENTS = ExperimentAssignment.__table__  # type: ignore[attr-defined]
FEEDBACK = Feedback.__table__  # type: ignore[attr-defined]

#: The mechanics of a Telegram payment are not what made a person buy: attribution
#: skips them and finds the interaction before (the button, the question...).
NOT_TRIGGERS = ("pre_checkout_query", "successful_payment")

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

    Known sessions are cached (bounded LRU); for members not in the cache one query
    per batch reads their interactions within the timeout before the batch, so a
    restart continues open sessions.
    """

    def __init__(self, timeout: timedelta, capacity: int = 100_000):
        self.timeout = timeout
        self.capacity = capacity
        self._cache: OrderedDict[SessionKey, tuple[str, datetime]] = OrderedDict()

    def _recent(self, conn: Connection, rows: list[dict[str, Any]], keys: set[SessionKey]
                ) -> dict[SessionKey, tuple[str, datetime]]:
        """The latest stored interaction of each key that could still be in an open
        session for these rows: one query per tenant and bot, not one per member."""
        found: dict[SessionKey, tuple[str, datetime]] = {}
        t = INTERACTIONS.c
        groups: dict[tuple[str, int], set[int]] = {}
        for tenant, bot, _chat, member in keys:
            groups.setdefault((tenant, bot), set()).add(member)
        lo = min(r["ts"] for r in rows) - self.timeout
        hi = max(r["ts"] for r in rows)
        for (tenant, bot), members in groups.items():
            stmt = (sa.select(t.member_id, sa.func.coalesce(t.chat_id, t.member_id),
                              t.session_id, t.ts)
                    .where(t.tenant_id == tenant, t.bot_id == bot,
                           t.member_id.in_(sorted(members)), t.ts >= lo, t.ts <= hi,
                           t.session_id.is_not(None))
                    .order_by(t.ts))
            for member, chat, sid, ts in conn.execute(stmt):
                key = (tenant, bot, chat, member)
                if key in keys:
                    found[key] = (sid, ts)  # ordered by time: the last one wins
        return found

    def assign(self, conn: Connection, rows: list[dict[str, Any]]
               ) -> dict[SessionKey, tuple[str, datetime]]:
        """Set ``session_id`` on rows (in time order); returns the cache updates to
        commit once the transaction has succeeded."""
        pending: dict[SessionKey, tuple[str, datetime]] = {}
        if not rows:
            return pending
        ordered = sorted(rows, key=itemgetter("ts"))
        # The keys in a list of their own, not paired with their rows: see
        # nlp.intents.certain() for why a batch makes as few tuples as it can.
        keys = [(r["tenant_id"], r["bot_id"], session_chat(r["chat_id"], r["member_id"]),
                 r["member_id"]) for r in ordered]
        missing = {k for k in keys if k not in self._cache}
        known = self._recent(conn, ordered, missing) if missing else {}
        for key, row in zip(keys, ordered, strict=True):
            ts = row["ts"]
            state = pending.get(key) or self._cache.get(key) or known.get(key)
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

    def __init__(self, engine: Engine, session_timeout: timedelta,
                 attribution_window: timedelta = timedelta(hours=24)):
        self.engine = engine
        self.sessions = Sessionizer(session_timeout)
        self.attribution_window = attribution_window

    def write(self, interactions: list[dict[str, Any]], members: list[dict[str, Any]],
              member_events: list[dict[str, Any]],
              conversions: list[dict[str, Any]] | None = None,
              exposures: list[dict[str, Any]] | None = None,
              feedback: list[dict[str, Any]] | None = None,
              complete: Callable[[], Any] | None = None) -> None:
        """Store a batch in one transaction. ``complete`` is called before anything is
        written (it may fill in the interactions' sentiment meanwhile): while it waits,
        the transaction has only read, which holds up no other writer."""
        with self.engine.begin() as conn:
            updates = self.sessions.assign(conn, interactions)
            if complete is not None:
                complete()
            insert_ignore(conn, INTERACTIONS, interactions)
            upsert_members(conn, MEMBERS, members)
            insert_ignore(conn, MEMBER_EVENTS, member_events)
            self._apply_blocks(conn, member_events)
            for conversion in sorted(conversions or [], key=lambda c: c["ts"]):
                self._write_conversion(conn, conversion)
            upsert_assignments(conn, ASSIGNMENTS, exposures or [])
            insert_ignore(conn, FEEDBACK, feedback or [])
        self.sessions.commit(updates)

    def _trigger(self, conn: Connection, c: dict[str, Any]) -> Any:
        """The member's latest interaction with the same tenant and bot at or before the
        conversion and within the attribution window (KPIS.md)."""
        t = INTERACTIONS.c
        return conn.execute(
            sa.select(t.id, t.ts, t.intent, t.intent_confidence, t.text, t.response_text,
                      t.session_id)
            .where(t.tenant_id == c["tenant_id"], t.bot_id == c["bot_id"],
                   t.member_id == c["member_id"], t.ts <= c["ts"],
                   t.ts >= c["ts"] - self.attribution_window,
                   t.event_type.not_in(NOT_TRIGGERS))
            .order_by(t.ts.desc(), t.id.desc()).limit(1)).first()

    @staticmethod
    def session_so_far(c: dict[str, Any], session_id: str | None) -> sa.Select[Any]:
        """The start and the number of interactions of the trigger's session up to the
        conversion ``c``. ``session_id`` has no index of its own: naming the member lets
        the member index find the rows."""
        t = INTERACTIONS.c
        return (sa.select(sa.func.min(t.ts), sa.func.count())
                .where(t.tenant_id == c["tenant_id"], t.bot_id == c["bot_id"],
                       t.member_id == c["member_id"], t.session_id == session_id,
                       t.ts <= c["ts"]))

    def _write_conversion(self, conn: Connection, c: dict[str, Any]) -> None:
        trigger = self._trigger(conn, c)
        row = {**c, "interaction_id": None, "intent": None, "intent_score": None,
               "trigger_text": None, "bot_message": None, "pages_visited": None,
               "time_to_conversion_s": None}
        if trigger is not None:
            start, pages = conn.execute(self.session_so_far(c, trigger.session_id)).one()
            row.update(interaction_id=trigger.id, intent=trigger.intent,
                       intent_score=trigger.intent_confidence, trigger_text=trigger.text,
                       bot_message=trigger.response_text, pages_visited=pages,
                       time_to_conversion_s=(c["ts"] - start).total_seconds()
                       if start is not None else None)
        conversion_id = insert_ignore_returning_id(conn, CONVERSIONS, row)
        if conversion_id is None:  # an external id seen before: idempotent
            return
        if c["amount_minor"] > 0 or c["value"] > 0:
            if trigger is not None:
                conn.execute(sa.update(INTERACTIONS).where(INTERACTIONS.c.id == trigger.id)
                             .values(monetization_event=True))
            conn.execute(sa.insert(MONETIZATION).values(
                tenant_id=c["tenant_id"], bot_id=c["bot_id"], ts=c["ts"],
                member_id=c["member_id"], conversion_id=conversion_id,
                interaction_id=row["interaction_id"], intent=row["intent"], value=c["value"],
                amount_minor=c["amount_minor"], currency=c["currency"]))

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
