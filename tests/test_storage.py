"""Schema, migrations, sessions and member rows on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st

from bot_analytics import Analytics
from bot_analytics.events import MemberEvent
from bot_analytics.storage import db
from bot_analytics.storage.models import metadata
from bot_analytics.storage.queries import BatchStore

from .conftest import make_settings, rows
from .test_writer import event

T0 = datetime(2026, 3, 1, 23, 50, tzinfo=UTC)


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    engine.dispose()


def test_downgrade_removes_every_table(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(db.alembic_config(conn), "base")
    names = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert names == set()
    engine.dispose()


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'n.sqlite3'}")
    db.upgrade(engine)
    from bot_analytics.storage.queries import OPT_OUTS

    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(OPT_OUTS.insert().values(tenant_id="t", member_id=1,
                                              ts=datetime(2026, 1, 1)))


def test_batch_writes_store_times_as_sqlalchemy_does(database_url: str) -> None:
    """The writer's batch inserts convert timestamps themselves; what they store must be
    what SQLAlchemy stores for the same value, and a naive time is refused there too."""
    from bot_analytics.storage.queries import OPT_OUTS

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    times = [datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # no fraction
             datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
             datetime(2026, 3, 1, 6, 0, tzinfo=UTC)]  # UTC without a fraction
    with engine.begin() as conn:
        db.insert_ignore(conn, OPT_OUTS, [{"tenant_id": "batch", "member_id": i, "ts": t}
                                          for i, t in enumerate(times)])
        for i, t in enumerate(times):
            conn.execute(OPT_OUTS.insert().values(tenant_id="sqlalchemy", member_id=i, ts=t))
    stored = {(r.tenant_id, r.member_id): r.ts
              for r in rows(database_url, "SELECT tenant_id, member_id, ts FROM opt_outs")}
    for i in range(len(times)):
        assert stored[("batch", i)] == stored[("sqlalchemy", i)]
    if database_url.startswith("sqlite"):  # UTC wall time as text, always six decimals
        assert [stored[("batch", i)] for i in range(len(times))] == [
            "2026-03-01 23:30:00.000000", "2026-03-01 23:59:59.999999",
            "2026-03-01 12:00:00.000005", "2026-03-01 06:00:00.000000"]
    with engine.connect() as conn:
        back = dict(conn.execute(sa.select(OPT_OUTS.c.member_id, OPT_OUTS.c.ts)
                                 .where(OPT_OUTS.c.tenant_id == "batch")).all())
    assert back == dict(enumerate(times))  # the same instants
    with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
        db.insert_ignore(conn, OPT_OUTS, [{"tenant_id": "batch", "member_id": 9,
                                           "ts": datetime(2026, 1, 1)}])
    # The same instants again, given in another zone (their text is remembered from the
    # first insert), and a naive time equal in its fields to one of them: still refused.
    again = [t.astimezone(timezone(timedelta(hours=-5))) for t in times]
    with engine.begin() as conn:
        db.insert_ignore(conn, OPT_OUTS, [{"tenant_id": "again", "member_id": i, "ts": t}
                                          for i, t in enumerate(again)])
    stored = {(r.tenant_id, r.member_id): r.ts
              for r in rows(database_url, "SELECT tenant_id, member_id, ts FROM opt_outs")}
    assert [stored[("again", i)] for i in range(len(times))] == \
        [stored[("batch", i)] for i in range(len(times))]
    with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
        db.insert_ignore(conn, OPT_OUTS, [{"tenant_id": "batch", "member_id": 9,
                                           "ts": times[1].replace(tzinfo=None)}])
    engine.dispose()


zones = st.just(UTC) | st.builds(timezone, st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)))


@given(st.lists(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 1, 1),
                             timezones=zones), max_size=20))
def test_sqlite_text_of_a_time_is_its_utc_isoformat(times: list[datetime]) -> None:
    """The batch inserts' text of a timestamp, which keeps the text of each second seen
    lately, is the UTC wall time's isoformat with six decimals, whatever came before."""
    for t in times + times[::-1]:  # each second again, from the kept texts
        assert db._sqlite_ts(t) == \
            t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def test_sqlite_text_tells_apart_times_one_field_apart() -> None:
    base = datetime(2026, 3, 1, 12, 30, 15, 250, tzinfo=UTC)
    times = [base] + [base.replace(**{field: value}) for field, value in [
        ("year", 2027), ("month", 4), ("day", 2), ("hour", 13), ("minute", 31),
        ("second", 16), ("microsecond", 251)]] + [base]
    assert [db._sqlite_ts(t) for t in times] == [
        "2026-03-01 12:30:15.000250", "2027-03-01 12:30:15.000250",
        "2026-04-01 12:30:15.000250", "2026-03-02 12:30:15.000250",
        "2026-03-01 13:30:15.000250", "2026-03-01 12:31:15.000250",
        "2026-03-01 12:30:16.000250", "2026-03-01 12:30:15.000251",
        "2026-03-01 12:30:15.000250"]


def test_sqlite_binds_none_and_bools_as_it_does_without_adapters(tmp_path: Path) -> None:
    """A SQLite engine registers adapters for None and bools (the failed lookup of
    sqlite3's own fallback is costly); they bind NULL, 1 and 0, as sqlite3 does."""
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)] is db._null
    assert sqlite3.adapters[(bool, sqlite3.PrepareProtocol)] is int
    with engine.connect() as conn:
        got = conn.exec_driver_sql("SELECT typeof(?), ?, typeof(?), ?, typeof(?), ?",
                                   (None, None, True, True, False, False)).one()
    assert tuple(got) == ("null", None, "integer", 1, "integer", 0)
    engine.dispose()


def test_an_applications_own_sqlite_adapter_stays(tmp_path: Path) -> None:
    key = (bool, sqlite3.PrepareProtocol)
    before = sqlite3.adapters.pop(key, None)

    def yes_no(value: bool) -> str:
        return "yes" if value else "no"

    sqlite3.register_adapter(bool, yes_no)
    try:
        engine = db.create_db_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
        assert sqlite3.adapters[key] is yes_no
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT ?", (True,)).scalar() == "yes"
        engine.dispose()
    finally:
        sqlite3.adapters.pop(key, None)
        if before is not None:
            sqlite3.adapters[key] = before


def test_batch_rows_without_some_columns_store_null_there(database_url: str) -> None:
    """A batch's columns are those of its first row; a later row without one of them
    stores NULL in it."""
    from bot_analytics.storage.queries import MEMBERS

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    full = {"tenant_id": "t", "bot_id": 1, "member_id": 1, "first_seen": t, "last_seen": t,
            "language_code": "en", "campaign": "promo", "blocked": False, "opted_out": False}
    short = {k: v for k, v in full.items() if k not in ("language_code", "campaign")}
    with engine.begin() as conn:
        db.insert_ignore(conn, MEMBERS, [full, {**short, "member_id": 2}])
    engine.dispose()
    got = rows(database_url, "SELECT member_id, language_code, campaign FROM members "
                             "ORDER BY member_id")
    assert [tuple(r) for r in got] == [(1, "en", "promo"), (2, None, None)]


async def test_sessions_split_after_exactly_the_timeout(database_url: str,
                                                        tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path))
    timeout = timedelta(minutes=30)
    times = [T0, T0 + timeout,                      # exactly 30 min later: same session
             T0 + 2 * timeout + timedelta(microseconds=1),  # a microsecond more: new
             T0 + 2 * timeout + timedelta(minutes=5)]       # crosses midnight: same
    for i, ts in enumerate(times):
        a.writer.put(event(i, member=7, ts=ts))
    a.writer.put(event(10, member=8, ts=T0))  # another member: their own session
    await a.close()
    got = rows(database_url, "SELECT update_id, session_id FROM interactions "
                             "ORDER BY update_id")
    sid = {r.update_id: r.session_id for r in got}
    assert sid[0] == sid[1] != sid[2] == sid[3]
    assert sid[10] not in (sid[0], sid[2])


async def test_a_session_is_read_by_its_member_as_the_schema_doc_shows(
        database_url: str, tmp_path: Path) -> None:
    """session_id has no index of its own; docs/schema.md's query names the member,
    and the member index finds the session's rows."""
    a = Analytics(make_settings(database_url, tmp_path))
    for i, minutes in enumerate([0, 10, 50]):  # 40 minutes apart: a second session
        a.writer.put(event(i, member=7, ts=T0 + timedelta(minutes=minutes)))
    a.writer.put(event(3, member=8, ts=T0))
    await a.close()
    start_ms = 1772409000000  # 2026-03-01 23:50 UTC in epoch milliseconds
    query = ("SELECT update_id FROM interactions WHERE tenant_id = 'default' AND bot_id = 42"
             f" AND member_id = 7 AND session_id = '42-7-7-{start_ms}' ORDER BY ts")
    assert [r.update_id for r in rows(database_url, query)] == [0, 1]
    engine = db.create_db_engine(database_url)
    indexed = {tuple(ix["column_names"])
               for ix in sa.inspect(engine).get_indexes("interactions")}
    assert ("session_id",) not in indexed
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + query))
        assert "ix_interactions_bot_member_ts" in plan, plan
        # So does the count of the pages a buyer saw in the session of the purchase.
        stmt = BatchStore.session_so_far({"tenant_id": "default", "bot_id": 42,
                                          "member_id": 7, "ts": T0}, f"42-7-7-{start_ms}")
        compiled = stmt.compile(dialect=engine.dialect)
        params = tuple(db._sqlite_ts(compiled.params[k]) for k in compiled.positiontup)
        with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + compiled.string, params))
            got = conn.execute(stmt).one()
        assert "ix_interactions_bot_member_ts" in plan, plan
        assert got[1] == 1  # the session's first interaction, at T0
    engine.dispose()


async def test_open_session_continues_after_restart(database_url: str, tmp_path: Path) -> None:
    first = Analytics(make_settings(database_url, tmp_path))
    first.writer.put(event(1, member=7, ts=T0))
    await first.close()
    second = Analytics(make_settings(database_url, tmp_path))  # empty session cache
    second.writer.put(event(2, member=7, ts=T0 + timedelta(minutes=10)))
    await second.close()
    got = rows(database_url, "SELECT DISTINCT session_id FROM interactions")
    assert len(got) == 1


async def test_members_first_last_seen_and_campaign(database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path, writer={"flush_at": 2}))
    start = event(1, member=5, text="/start promo", ts=T0 + timedelta(hours=1))
    start = start._replace(command="/start", command_args="promo")
    a.writer.put(start)
    a.writer.put(event(2, member=5, ts=T0 + timedelta(hours=3)))
    await a.flush(10)
    late = start._replace(update_id=3, ts=T0, command_args="other_campaign")
    a.writer.put(late)  # an earlier /start arriving late widens first_seen only
    a.writer.put(MemberEvent("default", 42, 5, "blocked", T0 + timedelta(hours=4), 4, 5))
    await a.close()
    m = rows(database_url, "SELECT * FROM members")[0]
    first_seen, last_seen = m.first_seen, m.last_seen
    if isinstance(first_seen, str):  # SQLite returns text through a raw query
        first_seen, last_seen = (datetime.fromisoformat(x).replace(tzinfo=UTC)
                                 for x in (first_seen, last_seen))
    assert first_seen == T0 and last_seen == T0 + timedelta(hours=4)
    assert m.campaign == "promo" and m.blocked in (True, 1)


async def test_forget_erases_every_table_but_keeps_the_opt_out(
        database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path))
    for i in range(3):
        a.writer.put(event(i, member=9))
    a.writer.put(event(10, member=10))
    await a.flush(10)
    await a.opt_out(9, bot_id=42)
    deleted = await a.forget(9)
    await a.close()
    assert deleted["interactions"] == 3 and deleted["members"] == 1
    assert deleted["member_events"] == 1  # the opt-out record of the lifecycle
    assert [r.member_id for r in rows(database_url, "SELECT member_id FROM interactions")] \
        == [10]
    assert [r.member_id for r in rows(database_url, "SELECT member_id FROM opt_outs")] == [9]


def test_delete_member_reaches_every_bot_of_the_tenant(database_url: str) -> None:
    """Member 9 has interactions with three bots of tenant a and one of tenant b:
    forgetting them in tenant a deletes those three bots' rows and nothing else; with no
    tenant, every row of theirs goes."""
    from bot_analytics.storage.queries import INTERACTIONS

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    base = {"event_type": "message", "chat_type": "private", "handled": True,
            "handler_time_ms": 1.0, "reply_count": 0, "escalated": False,
            "monetization_event": False}
    placed = [("a", 1, 9), ("a", 2, 9), ("a", 2, 9), ("a", 5, 9), ("a", 5, 8), ("b", 1, 9),
              ("b", 3, 8)]
    with engine.begin() as conn:
        db.insert_ignore(conn, INTERACTIONS, [
            {**base, "tenant_id": tenant, "bot_id": bot, "member_id": member, "chat_id": member,
             "update_id": i, "ts": T0 + timedelta(minutes=i)}
            for i, (tenant, bot, member) in enumerate(placed)])

    def left() -> list[tuple[str, int, int]]:
        with engine.connect() as conn:
            return sorted((r.tenant_id, r.bot_id, r.member_id) for r in conn.execute(
                sa.text("SELECT tenant_id, bot_id, member_id FROM interactions")))

    with engine.begin() as conn:
        assert db.tenant_bot_pairs(conn, INTERACTIONS) == [
            ("a", 1), ("a", 2), ("a", 5), ("b", 1), ("b", 3)]
        assert db.delete_member(conn, "a", 9)["interactions"] == 4
    assert left() == [("a", 5, 8), ("b", 1, 9), ("b", 3, 8)]
    with engine.begin() as conn:
        assert db.delete_member(conn, None, 9)["interactions"] == 1
        assert db.delete_member(conn, "c", 8)["interactions"] == 0
    assert left() == [("a", 5, 8), ("b", 3, 8)]
    engine.dispose()


def test_schema_doc_covers_every_table_and_column() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "schema.md").read_text()
    sections = {part.split("\n", 1)[0].strip(): part for part in doc.split("\n## ")[1:]}
    for table in metadata.sorted_tables:
        assert table.name in sections, f"docs/schema.md has no section for {table.name}"
        for column in table.columns:
            assert f"`{column.name}`" in sections[table.name], \
                f"docs/schema.md: {table.name}.{column.name} is not documented"


def test_every_package_is_installed() -> None:
    """A regular (not editable) install ships only the packages pyproject.toml lists."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {name: Path(path) for name, path in config.get("package-dir", {}).items()}
    for top in ("bot_analytics", "optimizer", "integrations"):
        for init in (root / top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(root).parts)
            assert name in listed, f"pyproject.toml: package {name} is not listed"
    for name, path in mapped.items():
        assert (root / path / "__init__.py").exists(), f"{name} -> {path}: no package there"


def test_read_columns_returns_every_value_exactly(database_url: str) -> None:
    """Columns read in bulk equal the rows the driver returns one by one: NULL and empty
    texts kept apart, commas, quotes, new lines, other scripts, doubles to the last bit,
    timestamps to the microsecond."""
    import numpy as np

    from bot_analytics.storage.queries import INTERACTIONS

    engine = db.create_db_engine(database_url)
    db.upgrade(engine)
    texts = [None, "", "plain", 'a "quoted", text', "two\nlines", "привет 👋", "=eq", None]
    # Magnitudes up to 1e99: SQLite's own formatter is exact there (see read_columns).
    floats = [None, 0.1 + 0.2, 1e-300, 123456.78901234567, 3.14159e99, 2.0 ** 53, None, 5.0]
    base = {"tenant_id": "t", "bot_id": 1, "event_type": "message", "chat_type": "private",
            "handled": True, "handler_time_ms": 1.0, "reply_count": 0,
            "escalated": False, "monetization_event": False}
    # Some a microsecond before a whole second, which millisecond rounding would move.
    moments = [T0 + timedelta(seconds=i, microseconds=999_999 if i % 2 else 7 * i + 1)
               for i in range(len(texts))]
    with engine.begin() as conn:
        db.insert_ignore(conn, INTERACTIONS, [
            {**base, "update_id": i, "ts": moments[i], "member_id": 10 ** 12 + i,
             "chat_id": -i, "text": texts[i], "response_time_ms": floats[i]}
            for i in range(len(texts))])
    t = INTERACTIONS.c
    with engine.connect() as conn:
        stmt = sa.select(t.member_id, t.chat_id, db.epoch_micros(conn, t.ts), t.text,
                         t.response_time_ms).order_by(t.update_id)
        member, chat, micros, text, rt = db.read_columns(
            conn, stmt, ["int", "int", "int", "text", "float"])
        assert member.tolist() == [10 ** 12 + i for i in range(len(texts))]
        assert chat.tolist() == [-i for i in range(len(texts))]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert micros.tolist() == [(m - epoch) // timedelta(microseconds=1) for m in moments]
        assert text.tolist() == texts
        assert [None if np.isnan(x) else x for x in rt] == floats
        empty = db.read_columns(conn, stmt.where(t.member_id < 0),
                                ["int", "int", "int", "text", "float"])
        assert [len(c) for c in empty] == [0] * 5
        with pytest.raises(ValueError, match="5 columns selected but kinds"):
            db.read_columns(conn, stmt, ["int", "int", "int", "text"])
        with pytest.raises(ValueError, match="each one of"):
            db.read_columns(conn, stmt, ["int", "int", "int", "text", "date"])
        if conn.dialect.name == "sqlite":
            # A NULL integer cannot travel in a concatenated column: said, not shifted.
            with pytest.raises(ValueError, match="came back with 7 of 8 values"):
                db.read_columns(conn, sa.select(sa.case((t.update_id == 3, None),
                                                        else_=t.update_id)), ["int"])
    engine.dispose()
