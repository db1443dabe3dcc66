"""The background writer: one asyncio task and one worker thread.

The hot path only calls :meth:`Writer.put`, which appends to a bounded buffer and never
awaits. The task closes a batch on size (``flush_at``) or on a monotonic interval
(``flush_interval``) and hands it to the worker thread, which enriches it and writes it
in one transaction; with a backlog a batch takes up to ``max_batch`` events. Where VADER
runs in a helper process (``sentiment.helper_process``), the thread sends it each part
of the batch as soon as it has read it and collects the scores before it writes. Transient
database errors are retried with capped exponential backoff; after ``max_retries`` the
batch goes to the spool, and while the spool holds anything new batches go there too,
so replay keeps the original order.

While a writer runs, the interpreter's switch interval is at most
``writer.switch_interval_ms`` (:data:`interpreter_switch`): the worker thread runs Python
code, and the bot's event loop, waking up for an update or an answer meanwhile, waits
that long at most for the interpreter lock rather than CPython's 5 ms.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc

from ..capture.context import UpdateContext
from ..capture.extract import to_events, update_id_of
from ..events import (
    Captured,
    ConversionEvent,
    ExposureEvent,
    FeedbackEvent,
    InteractionEvent,
    MemberEvent,
    Skipped,
)
from .enrich import Enricher, PreparedBatch, derived_conversion, derived_member_event
from .spool import Spool

log = logging.getLogger("bot_analytics.writer")

Event = InteractionEvent | MemberEvent | ConversionEvent | ExposureEvent | FeedbackEvent
#: Captured updates read before their texts are sent to be scored.
SENTIMENT_PART = 250
Item = UpdateContext | Captured | Event


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying: the database or the connection, not the rows."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError |
                      sa_exc.DisconnectionError | sa_exc.TimeoutError |
                      sa_exc.ProgrammingError | SchemaNotReady | OSError)


def is_row_error(error: BaseException) -> bool:
    """Errors caused by the data of some row (other rows of the batch are fine)."""
    return isinstance(error, sa_exc.IntegrityError | sa_exc.DataError | ValueError |
                      TypeError | sa_exc.StatementError) and not is_transient(error)


class _SwitchInterval:
    """The interpreter's switch interval while writers run. It is process-wide: a writer
    that starts lowers it to what it asks for, with several running the smallest of
    theirs applies, and the last to stop puts back what the process had before the first
    started. An interval set by something else meanwhile is neither raised nor put
    back."""

    def __init__(self) -> None:
        #: What each running writer asks for, in seconds (a writer dropped without
        #: close() leaves on its own).
        self.holds: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()
        self.before = 0.0  # the interval before the first hold
        self.applied: float | None = None  # what was last set here

    def hold(self, holder: object, seconds: float | None) -> None:
        if seconds is None:
            return
        if not self.holds:
            self.before, self.applied = sys.getswitchinterval(), None
        self.holds[holder] = seconds
        wanted = min(self.before, *self.holds.values())
        if sys.getswitchinterval() > wanted:
            self._set(wanted)

    def release(self, holder: object) -> None:
        if self.holds.pop(holder, None) is None:
            return
        wanted = min(self.before, *self.holds.values()) if self.holds else self.before
        current = sys.getswitchinterval()
        if current == self.applied and current != wanted:  # only an interval set here
            self._set(wanted)
        if not self.holds:
            self.applied = None

    def _set(self, seconds: float) -> None:
        sys.setswitchinterval(seconds)
        self.applied = sys.getswitchinterval()


#: How the running writers share the interpreter's switch interval.
interpreter_switch = _SwitchInterval()


class SchemaNotReady(RuntimeError):
    """The database is reachable but not migrated to the schema this version needs."""


@dataclass
class Counters:
    updates: int = 0  # updates the middleware saw (whatever became of them)
    written: int = 0
    dropped: int = 0
    retried: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    capture_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_flush_at: datetime | None = None


class Writer:
    def __init__(self, *, enricher: Enricher, write: Callable[[PreparedBatch], None],
                 spool: Spool, queue_size: int, flush_at: int, flush_interval: float,
                 max_batch: int,
                 max_retries: int, backoff_initial: float, backoff_max: float,
                 prepare_store: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 switch_interval: float | None = None):
        self.enricher = enricher
        self._write = write
        self._prepare_store = prepare_store
        self.spool = spool
        self.maxsize = queue_size
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.max_batch = max(max_batch, flush_at)
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        #: The interpreter's switch interval while this writer runs (seconds; None:
        #: leave it alone).
        self.switch_interval = switch_interval
        self.counters = Counters()
        self._buf: deque[Item] = deque()
        self._settled = 0  # items taken from the buffer and fully handled
        self._taken = 0
        #: A prepared batch held back unstored; only the writer's thread touches it.
        self._held: PreparedBatch | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._closing = False
        self._store_ready = False
        self._next_replay = 0.0
        self._replay_backoff = backoff_initial

    # -- hot path --------------------------------------------------------------------
    def put(self, item: Item) -> bool:
        """Queue an item without blocking; a full queue drops it and counts the drop."""
        buf = self._buf
        n = len(buf)
        if n >= self.maxsize:
            self.counters.dropped += 1
            return False
        buf.append(item)
        if n + 1 >= self.flush_at or self._task is None:
            self._kick()
        return True

    @property
    def quiet_room(self) -> int:
        """While fewer items than this are queued and the writer runs, :meth:`put` of one
        more neither drops it nor wakes the writer: it only appends. The capture
        middleware appends to the queue itself then."""
        return min(self.maxsize, self.flush_at - 1)

    def _kick(self) -> None:
        """Start the writer, or wake it: a full batch is waiting."""
        if self._task is None:
            self._start_in_loop()
        elif self._wake is not None:
            self._wake.set()

    @property
    def queued(self) -> int:
        """Items accepted into the queue so far."""
        return self._taken + len(self._buf)

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _start_in_loop(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._closing = False
        interpreter_switch.hold(self, self.switch_interval)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bot-analytics-writer")
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name="bot-analytics-writer")

    async def start(self) -> None:
        self._start_in_loop()

    async def run_in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the writer's thread, the only one that writes to the database."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="bot-analytics-writer")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written, spooled or rejected.
        Returns False when the timeout ran out first."""
        if self._task is None:
            if not self._buf:
                return True
            self._start_in_loop()
        target = self._taken + len(self._buf)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._settled < target:
            assert self._wake is not None and self._progress is not None
            if self._task is None or self._task.done():
                return False
            self._progress.clear()
            self._wake.set()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def close(self, timeout: float = 30.0) -> bool:
        """Flush and stop. Returns False if the flush did not finish in time (what is
        left in memory is then spooled)."""
        ok = await self.flush(timeout)
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            done, _ = await asyncio.wait([self._task], timeout=5)
            if not done:
                self._task.cancel()
                await asyncio.wait([self._task])  # its last step hands the thread work
            self._task = None
        if self._buf:
            # Shutdown ran out of time: keep the rest on disk rather than lose it.
            rest = list(self._buf)
            self._buf.clear()
            self._taken += len(rest)
            await self.run_in_worker(self._spool_items, rest)
        if self._executor is not None:
            await self.run_in_worker(self.enricher.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        interpreter_switch.release(self)
        return ok

    # -- the task ------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None and self._progress is not None and self._executor
        try:
            await loop.run_in_executor(self._executor, self._ensure_store)
        except Exception as error:
            self._note_error("preparing the database", error)
        held = 0  # items whose batch the thread holds back unstored (_advance())
        try:
            while True:
                if not held and len(self._buf) < self.flush_at and not self._closing:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                    except TimeoutError:
                        pass
                self._wake.clear()
                n = min(len(self._buf), self.max_batch)
                batch = [self._buf.popleft() for _ in range(n)]
                self._taken += n
                settled, held = n + held, 0
                try:
                    if batch or settled:
                        if await loop.run_in_executor(self._executor, self._advance, batch):
                            settled, held = settled - n, n
                    elif self.spool and time.monotonic() >= self._next_replay:
                        await loop.run_in_executor(self._executor, self._replay)
                except Exception as error:  # pragma: no cover - _advance never raises
                    self._note_error("writing a batch", error)
                finally:
                    self._settled += settled
                    self._progress.set()
                if self._closing and not self._buf and not held:
                    return
        finally:
            if self._executor is not None:
                # Cancelled (a shutdown out of time, or the event loop ending without
                # close()): a batch the thread holds back, or is about to, is stored
                # before anything handed to the thread after this.
                self._executor.submit(self._store_held)
                self._settled += held

    # -- worker thread -----------------------------------------------------------------
    def _note_error(self, what: str, error: BaseException) -> None:
        c = self.counters
        c.last_error = f"{what}: {type(error).__name__}: {error}"[:500]
        c.last_error_at = datetime.now(UTC)
        log.warning("bot-analytics: %s failed: %s: %s", what, type(error).__name__, error)

    def _ensure_store(self) -> None:
        if not self._store_ready and self._prepare_store is not None:
            self._prepare_store()
        self._store_ready = True

    def _spool_items(self, items: list[Item]) -> None:
        self._spool_batch(self._prepare(items))

    def _spool_batch(self, batch: PreparedBatch) -> None:
        batch.complete()
        try:
            self.spool.append(batch)
            self.counters.spooled += len(batch)
        except Exception as error:
            self.counters.rejected += len(batch)
            self._note_error(f"spooling {len(batch)} events to {self.spool.path}", error)
            log.error("bot-analytics: %d events lost: neither database nor spool "
                      "could take them", len(batch))

    def _events(self, items: list[Item]) -> list[Event]:
        """Read the captured updates; skipped ones are counted with their reason."""
        out: list[Event] = []
        # perf_counter readings of the hot path -> epoch seconds, as of this batch.
        wall_offset = time.time() - time.perf_counter()
        for item in items:
            if isinstance(item, UpdateContext | Captured):
                self._read_update(item, wall_offset, out)
                if isinstance(item, UpdateContext) and item.conversions:
                    # Conversions tracked while handling follow their interaction.
                    out.extend(item.conversions)
            else:
                out.append(item)
        return out

    def _read_update(self, item: UpdateContext | Captured, wall_offset: float,
                     out: list[Event]) -> None:
        c = self.counters
        try:
            captured = item.record(wall_offset) if isinstance(item, UpdateContext) else item
            events = to_events(captured)
        except Exception as error:
            c.capture_failures += 1
            self._note_error(f"reading update {update_id_of(item)}", error)
            return
        if isinstance(events, Skipped):
            c.skipped += 1
            c.skip_reasons[events.reason] = c.skip_reasons.get(events.reason, 0) + 1
            log.debug("update %s of bot %s is not an interaction (%s): not recorded",
                      update_id_of(item), item.bot_id, events.reason)
        else:
            out.extend(events)

    def _prepare(self, items: list[Item]) -> PreparedBatch:
        try:
            # Each part's texts go to the sentiment analyzer as soon as the part is read:
            # with a helper process, they are scored while the next part is read.
            events: list[Event] = []
            started = []
            for k in range(0, len(items), SENTIMENT_PART):
                part = self._events(items[k:k + SENTIMENT_PART])
                started.append(self.enricher.start_sentiments(part))
                events.extend(part)
            return self.enricher.prepare(events, started)
        except Exception as error:  # the enricher guards each step; this is a last resort
            self._note_error("enriching a batch", error)
            self.counters.rejected += len(items)
            return PreparedBatch()

    def _advance(self, items: list[Item]) -> bool:
        """Prepare ``items``, then store the batch held back before them, if any. While a
        full batch waits in the queue behind ``items``, their batch is held back in turn,
        to be stored once the next one is prepared (True is returned): its texts are
        scored by the sentiment helper process meanwhile, where storing it at once would
        first wait for the scores. Otherwise it is stored too. Batches are stored in the
        order they were taken."""
        batch = self._prepare(items) if items else None
        self._store_held()
        if batch is None:
            return False
        if len(self._buf) >= self.flush_at and not self._closing:
            self._held = batch
            return True
        self._process_prepared(batch)
        return False

    def _store_held(self) -> None:
        batch, self._held = self._held, None
        if batch is not None:
            self._process_prepared(batch)

    def _process_prepared(self, batch: PreparedBatch) -> None:
        try:
            self._store(batch)
        finally:
            batch.complete()  # a batch refused as a whole is still waited for

    def _store(self, batch: PreparedBatch) -> None:
        if not len(batch) and not batch.members:
            return
        if self.spool and not self._replay():
            self._spool_batch(batch)
            return
        if self._write_with_retries(batch):
            self.counters.written += len(batch)
            self.counters.last_flush_at = datetime.now(UTC)
        else:
            self._spool_batch(batch)

    def _write_with_retries(self, batch: PreparedBatch) -> bool:
        delay = self.backoff_initial
        for attempt in range(self.max_retries + 1):
            try:
                self._ensure_store()
                self._write(batch)
                return True
            except Exception as error:
                if is_row_error(error):
                    self._write_rows_one_by_one(batch)
                    return True
                self._note_error("writing a batch", error)
                if not is_transient(error) or attempt == self.max_retries:
                    return False
                self.counters.retried += 1
                self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
        return False

    def _write_rows_one_by_one(self, batch: PreparedBatch) -> None:
        """A row the database refuses must not take the rest of its batch with it."""
        batch.complete()
        for row in batch.interactions:
            one = PreparedBatch([row], [m for m in batch.members
                                        if m["member_id"] == row["member_id"]], [])
            try:
                self._write(one)
            except Exception as error:
                self.counters.written -= 1  # the caller counts the whole batch
                if is_transient(error):
                    self._spool_batch(one)
                    continue
                self.counters.rejected += 1
                self._note_error(f"storing update {row.get('update_id')}", error)
        for conversion in batch.conversions:
            try:
                self._write(PreparedBatch([], [], [], [conversion]))
            except Exception as error:
                self._refused(derived_conversion(conversion), "storing a conversion", error)
        for event in batch.member_events:
            try:
                self._write(PreparedBatch([], [], [event]))
            except Exception as error:
                self._refused(derived_member_event(event), "storing a member event", error)
        for exposure in batch.exposures:
            try:
                self._write(PreparedBatch(exposures=[exposure]))
            except Exception as error:
                # The caller counted every exposure in the row as written.
                count = int(exposure["exposures"])
                self.counters.written -= count
                self.counters.rejected += count
                self._note_error("storing an experiment exposure", error)
        for rating in batch.feedback:
            try:
                self._write(PreparedBatch(feedback=[rating]))
            except Exception as error:
                self._refused(False, "storing a CSAT rating", error)

    def _refused(self, derived: bool, what: str, error: BaseException) -> None:
        # The caller counted the whole batch as written; derived rows were never counted.
        if not derived:
            self.counters.written -= 1
            self.counters.rejected += 1
        self._note_error(what, error)

    def _replay(self) -> bool:
        """Replay spooled batches in order; True when the spool is empty afterwards."""
        now = time.monotonic()
        if now < self._next_replay:
            return False
        try:
            batches = self.spool.batches()
        except Exception as error:
            self._note_error(f"reading the spool {self.spool.path}", error)
            return False
        done = 0
        try:
            self._ensure_store()
            for b in batches:
                self._write(b)
                done += 1
                self.counters.replayed += len(b)
        except Exception as error:
            self._note_error("replaying the spool", error)
            self._next_replay = now + self._replay_backoff
            self._replay_backoff = min(self._replay_backoff * 2, self.backoff_max)
            if done:
                self.spool.keep_from(done, batches)
            return False
        self.spool.keep_from(done, batches)
        self._replay_backoff = self.backoff_initial
        self._next_replay = 0.0
        if done:
            log.info("bot-analytics: replayed %d spooled batches", done)
        return True

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        c = self.counters
        e = self.enricher.stats
        return {
            "running": self.running, "updates": c.updates,
            "queued": self.queued, "in_queue": len(self._buf), "written": c.written,
            "dropped": c.dropped, "retried": c.retried, "spooled": c.spooled,
            "replayed": c.replayed, "rejected": c.rejected, "skipped": c.skipped,
            "skip_reasons": dict(c.skip_reasons), "capture_failures": c.capture_failures,
            "enrichment_failures": e.enrichment_failures, "row_failures": e.row_failures,
            "filtered_opt_out": e.filtered_opt_out, "spool_pending": bool(self.spool),
            "last_error": c.last_error, "last_error_at": c.last_error_at,
            "last_flush_at": c.last_flush_at,
        }
