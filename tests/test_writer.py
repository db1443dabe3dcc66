"""The background writer: batching, drops, retries, the spool and shutdown."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot_analytics import Analytics
from bot_analytics.events import InteractionEvent
from bot_analytics.pipeline.enrich import PreparedBatch
from bot_analytics.pipeline.spool import Spool
from bot_analytics.storage import db

from .conftest import PG_URL, make_settings, rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(update_id: int, member: int = 1, text: str | None = "hello", *,
          ts: datetime | None = None, tenant: str = "default") -> InteractionEvent:
    return InteractionEvent(
        tenant_id=tenant, bot_id=42, update_id=update_id, event_type="message",
        ts=ts or T0 + timedelta(seconds=update_id), member_id=member, chat_id=member,
        chat_type="private", language_code="en", text=text, command=None, command_args=None,
        callback_data=None, handled=True, error=None, handler_time_ms=1.0,
        response_text="ok", response_time_ms=0.5, reply_count=1, escalated=False,
        intent_override=None)


def stored_ids(database_url: str) -> list[int]:
    return [r.update_id for r in rows(database_url,
                                      "SELECT update_id FROM interactions ORDER BY id")]


async def test_batch_closes_on_size_before_the_interval(database_url: str,
                                                        tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path,
                                writer={"flush_at": 3, "flush_interval": 30}))
    await a.start()
    await a.flush(10)  # the store is ready
    for i in range(3):
        a.writer.put(event(i))
    await asyncio.wait_for(_until(lambda: a.health()["written"] == 3), 10)
    assert sorted(stored_ids(database_url)) == [0, 1, 2]
    await a.close()


async def test_batch_closes_on_interval(database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path,
                                writer={"flush_at": 500, "flush_interval": 0.05}))
    a.writer.put(event(1))
    await asyncio.wait_for(_until(lambda: a.health()["written"] == 1), 10)
    await a.close()


async def test_a_backlog_is_taken_in_batches_up_to_max_batch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"flush_at": 10, "max_batch": 20,
                                                       "flush_interval": 30}))
    sizes: list[int] = []
    real_write = a._write_batch

    def record(batch: PreparedBatch) -> None:
        sizes.append(len(batch))
        real_write(batch)

    a.writer._write = record
    for i in range(45):  # queued without yielding: a backlog
        a.writer.put(event(i))
    assert await a.flush(10)
    await a.close()
    assert sizes == [20, 20, 5]
    assert stored_ids(url) == list(range(45))


async def test_with_a_backlog_a_batch_is_stored_once_the_next_is_read(
        tmp_path: Path) -> None:
    """While a full batch waits behind the one being read, that one is stored only after
    the next is prepared (its texts are scored meanwhile); the batches are still stored
    in the order they were taken, and one with nothing behind it is stored at once."""
    url = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"flush_at": 10, "max_batch": 20,
                                                       "flush_interval": 30}))
    steps: list[tuple[str, int]] = []
    real_prepare, real_write = a.writer._prepare, a._write_batch

    def prepare(items: list[Any]) -> PreparedBatch:
        steps.append(("prepare", items[0].update_id))
        return real_prepare(items)

    def write(batch: PreparedBatch) -> None:
        steps.append(("store", batch.interactions[0]["update_id"]))
        real_write(batch)

    a.writer._prepare, a.writer._write = prepare, write  # type: ignore[method-assign]
    for i in range(45):  # queued without yielding: a backlog
        a.writer.put(event(i))
    assert await a.flush(10)
    assert a.health()["written"] == 45
    a.writer.put(event(45))  # no backlog: stored as soon as it is read
    assert await a.flush(10)
    await a.close()
    assert steps == [("prepare", 0), ("prepare", 20), ("store", 0), ("store", 20),
                     ("prepare", 40), ("store", 40), ("prepare", 45), ("store", 45)]
    assert stored_ids(url) == list(range(46))


async def test_a_batch_held_back_is_stored_when_the_writer_is_cancelled(
        tmp_path: Path) -> None:
    """The event loop may cancel the writer's task (asyncio.run ending without close())
    while its thread holds a batch back: that batch is stored all the same."""
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"flush_at": 10, "max_batch": 20,
                                                       "flush_interval": 30}))
    steps: list[int] = []
    real_prepare, real_write = a.writer._prepare, a._write_batch

    def prepare(items: list[Any]) -> PreparedBatch:
        steps.append(items[0].update_id)
        return real_prepare(items)

    def slow_write(batch: PreparedBatch) -> None:
        time.sleep(0.3)
        real_write(batch)

    a.writer._prepare, a.writer._write = prepare, slow_write  # type: ignore[method-assign]
    for i in range(65):
        a.writer.put(event(i))
    # The thread has prepared the second batch and stores the first; it will hold the
    # second back, as 25 items wait behind it.
    await asyncio.wait_for(_until(lambda: steps == [0, 20]), 10)
    task = a.writer._task
    assert task is not None
    task.cancel()
    await asyncio.wait([task])
    await a.writer.run_in_worker(lambda: None)  # what the thread was handed is done
    assert stored_ids(url) == list(range(40))
    await a.close()  # the rest is spooled, as the writer no longer runs
    assert a.health()["spooled"] == 25


async def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"queue_size": 5}))
    accepted = [a.writer.put(event(i)) for i in range(8)]  # no await: the writer can't drain
    assert accepted == [True] * 5 + [False] * 3
    h = a.health()
    assert (h["queued"], h["dropped"]) == (5, 3)
    await a.close()
    assert stored_ids(url) == [0, 1, 2, 3, 4]


async def test_shutdown_flushes_everything(database_url: str, tmp_path: Path) -> None:
    a = Analytics(make_settings(database_url, tmp_path,
                                writer={"flush_at": 100, "flush_interval": 5}))
    for i in range(1000):
        a.writer.put(event(i, member=i % 17))
    assert await a.close(30)
    assert len(stored_ids(database_url)) == 1000
    assert a.health()["written"] == 1000


async def test_locked_sqlite_is_retried_then_spooled_then_replayed_in_order(
        tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    url = f"sqlite:///{path}"
    a = Analytics(make_settings(url, tmp_path, database={"busy_timeout_ms": 20},
                                writer={"max_retries": 2, "flush_at": 10}))
    a.writer.put(event(1))
    assert await a.flush(10)
    assert stored_ids(url) == [1]

    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    for i in range(2, 12):
        a.writer.put(event(i))
    assert await a.flush(20)
    h = a.health()
    assert h["retried"] == 2 and h["spooled"] == 10 and h["spool_pending"]
    assert "locked" in (h["last_error"] or "")
    for i in range(12, 15):  # while the spool holds data, new batches queue behind it
        a.writer.put(event(i))
    assert await a.flush(20)
    other.execute("ROLLBACK")
    other.close()

    a.writer.put(event(15))
    assert await a.flush(20)
    await asyncio.wait_for(_until(lambda: not a.health()["spool_pending"]), 20)
    await a.close()
    assert stored_ids(url) == list(range(1, 16))  # nothing lost, original order


class _Proxy:
    """A loopback TCP proxy in front of PostgreSQL that can be cut and restored."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.conns: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.conns += [writer, up_w]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.conns:
            w.close()
        self.conns.clear()
        await self.server.wait_closed()


@pytest.mark.skipif(PG_URL is None, reason="needs BOT_ANALYTICS_TEST_DATABASE_URL")
async def test_postgres_outage_spools_and_replays(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the PostgreSQL variant covers this")
    url = sa.engine.make_url(database_url)
    proxy = _Proxy(url.port or 5432)
    await proxy.start()
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    # The engine's pool has no pre-ping delay here: the cut is seen on first use.
    a = Analytics(make_settings(via_proxy, tmp_path, writer={"max_retries": 1,
                                                             "flush_at": 5}))
    a.writer.put(event(1))
    assert await a.flush(10)
    await proxy.cut()
    for i in range(2, 8):
        a.writer.put(event(i))
    assert await a.flush(30)
    assert a.health()["spooled"] == 6
    await proxy.start()  # the database is back, on the same port
    await asyncio.wait_for(_until(lambda: not a.health()["spool_pending"]), 30)
    await a.close()
    await proxy.cut()
    assert stored_ids(database_url) == list(range(1, 8))


async def test_unmigrated_database_spools_until_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, database={"auto_migrate": False}))
    a.writer.put(event(1))
    assert await a.flush(10)
    h = a.health()
    assert h["spooled"] == 1 and "bot-analytics db upgrade" in h["last_error"]
    db.upgrade(db.create_db_engine(url))
    a.writer.put(event(2))
    assert await a.flush(10)
    await a.close()
    assert stored_ids(url) == [1, 2]


async def test_a_refused_row_does_not_take_its_batch_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rows.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"flush_at": 10}))
    real_write = a._write_batch

    def refuse_update_3(batch: PreparedBatch) -> None:
        if any(r["update_id"] == 3 for r in batch.interactions):
            raise sa.exc.IntegrityError("INSERT", {}, Exception("CHECK constraint failed"))
        real_write(batch)

    a.writer._write = refuse_update_3
    for i in range(1, 6):
        a.writer.put(event(i))
    await a.close()
    assert stored_ids(url) == [1, 2, 4, 5]
    h = a.health()
    assert (h["written"], h["rejected"]) == (4, 1)
    assert "update 3" in h["last_error"]


async def test_a_refused_derived_row_is_not_counted_as_a_lost_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'derived.sqlite3'}"
    a = Analytics(make_settings(url, tmp_path, writer={"flush_at": 10}))
    real_write = a._write_batch

    def refuse_start_rows(batch: PreparedBatch) -> None:
        if any(e["kind"] == "start" for e in batch.member_events):
            raise sa.exc.IntegrityError("INSERT", {}, Exception("CHECK constraint failed"))
        real_write(batch)

    a.writer._write = refuse_start_rows
    for i in (1, 2):
        a.writer.put(event(i))
    start = event(3, text="/start promo")
    a.writer.put(start._replace(command="/start", command_args="promo"))
    await a.close()
    assert stored_ids(url) == [1, 2, 3]  # every interaction, the /start one included
    h = a.health()
    assert (h["written"], h["rejected"]) == (3, 0)  # only the derived start row is missing


def test_spool_survives_a_torn_last_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    b1 = PreparedBatch([{"update_id": 1, "ts": T0}], [], [])
    b2 = PreparedBatch([{"update_id": 2, "ts": T0}], [], [])
    spool.append(b1)
    spool.append(b2)
    with (tmp_path / "s.jsonl").open("a") as fh:
        fh.write(json.dumps({"v": 1, "interactions": []})[:10])  # crash mid-write
    got = spool.batches()
    assert [b.interactions[0]["update_id"] for b in got] == [1, 2]
    assert got[0].interactions[0]["ts"] == T0  # datetimes come back aware
    spool.keep_from(1, got)
    assert [b.interactions[0]["update_id"] for b in spool.batches()] == [2]
    spool.keep_from(1, spool.batches())
    assert not spool


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


@pytest.fixture
def interpreter_interval() -> Any:
    """The interpreter's switch interval at CPython's default for the test, and as it was
    after it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def _analytics(tmp_path: Path, name: str, ms: float | None) -> Analytics:
    url = f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    return Analytics(make_settings(url, tmp_path / name,
                                   writer={"switch_interval_ms": ms}))


async def test_a_running_writer_lowers_the_switch_interval_and_puts_it_back(
        tmp_path: Path, interpreter_interval: None) -> None:
    a = _analytics(tmp_path, "a", 1.0)
    assert sys.getswitchinterval() == pytest.approx(0.005)  # not before it starts
    await a.start()
    assert sys.getswitchinterval() == pytest.approx(0.001)
    a.writer.put(event(1))
    assert await a.flush(10)
    await a.close()
    assert sys.getswitchinterval() == pytest.approx(0.005)
    await a.start()  # a writer started again holds it again
    assert sys.getswitchinterval() == pytest.approx(0.001)
    await a.close()
    assert sys.getswitchinterval() == pytest.approx(0.005)


async def test_the_switch_interval_is_left_alone_when_asked_or_already_lower(
        tmp_path: Path, interpreter_interval: None) -> None:
    a = _analytics(tmp_path, "a", None)
    await a.start()
    assert sys.getswitchinterval() == pytest.approx(0.005)
    await a.close()
    sys.setswitchinterval(0.0002)  # the process's own choice, below the writer's
    b = _analytics(tmp_path, "b", 1.0)
    await b.start()
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    await b.close()
    assert sys.getswitchinterval() == pytest.approx(0.0002)


async def test_several_writers_share_the_switch_interval(
        tmp_path: Path, interpreter_interval: None) -> None:
    a, b = _analytics(tmp_path, "a", 2.0), _analytics(tmp_path, "b", 0.5)
    await a.start()
    assert sys.getswitchinterval() == pytest.approx(0.002)
    await b.start()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    await b.close()  # a still runs: back to what a asks for
    assert sys.getswitchinterval() == pytest.approx(0.002)
    await b.start()
    await a.close()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    sys.setswitchinterval(0.003)  # set by something else while b runs: kept
    await b.close()
    assert sys.getswitchinterval() == pytest.approx(0.003)


def test_a_switch_interval_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="switch_interval_ms"):
        _analytics(tmp_path, "a", 0)
