"""VADER in a helper process: the same scores as VADER itself, and a batch is still
scored when the helper fails to start, dies, hangs or is given up."""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bot_analytics import Analytics, ConfigError
from bot_analytics.config import parse_settings
from bot_analytics.nlp import sentiment
from bot_analytics.nlp.sentiment import VaderProcess
from bot_analytics.plugin import _use_helper

from .conftest import make_settings, rows
from .test_nlp import VADER_EDGE_CASES
from .test_writer import event

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the helper process is POSIX-only")

VADER = SentimentIntensityAnalyzer()
ENGLISH = [
    *VADER_EDGE_CASES, "I love this shop, thank you!", "this is terrible, it arrived broken",
    "great 😀",
    "the delivery was late again and nobody answers", "x" * 4096, "line\nbreak \"quoted\"",
]
# Texts VADER must not score (another language by code or script): None.
OTHER = [("Das ist schlecht", "de"), ("Это ужасно", None), ("مرحبا", "en"), ("   ", "en")]


def expected(texts: list[str]) -> list[float]:
    return [VADER.polarity_scores(t)["compound"] for t in texts]


@pytest.fixture
def helper() -> VaderProcess:
    h = VaderProcess(timeout=20)
    yield h
    h.close()


def test_helper_scores_as_vader_does(helper: VaderProcess) -> None:
    texts = ENGLISH + [t for t, _ in OTHER]
    codes = ["en"] * len(ENGLISH) + [c for _, c in OTHER]
    got = helper.scores(texts, codes)
    assert got == expected(ENGLISH) + [None] * len(OTHER)
    # It was the helper that answered: one process other than this one, no failures.
    assert helper.started == 1 and helper.failures_total == 0
    assert helper.proc is not None and helper.proc.pid != os.getpid()
    assert helper.proc.poll() is None
    assert helper.scores([], []) == []


def test_answers_pair_with_their_requests(helper: VaderProcess) -> None:
    first = helper.start(["I love it"], ["en"])
    second = helper.start(["this is awful"], ["en"])
    assert second() == expected(["this is awful"])  # the first answer is skipped
    assert helper.failures_total == 0
    third = helper.start(["good", "bad"], ["en", "en"])
    assert third() == expected(["good", "bad"])
    assert first is not None


def _pipe_can_widen() -> bool:
    try:
        import fcntl

        return hasattr(fcntl, "F_SETPIPE_SZ") and int(
            Path("/proc/sys/fs/pipe-max-size").read_text()) >= sentiment.PIPE_BYTES
    except (ImportError, OSError, ValueError):
        return False


@pytest.mark.skipif(not _pipe_can_widen(), reason="pipes cannot be widened here")
def test_parts_are_sent_while_the_helper_is_busy() -> None:
    """A writer reads a batch faster than VADER scores it: the pipe to the helper holds
    far more than one part, so sending the parts does not wait for the helper to take
    them. Here the helper is stopped while 40 parts (about 400 KB, six times a default
    pipe) are sent, with a timeout shorter than a wait for it."""
    helper = VaderProcess(timeout=2)
    try:
        assert helper.scores(["fine"], ["en"]) == expected(["fine"])  # it runs
        assert helper.proc is not None
        texts = ["I love this shop, thank you!", "this is terrible, it arrived broken"] * 125
        os.kill(helper.proc.pid, signal.SIGSTOP)
        try:
            pending = [helper.start(texts, ["en"] * len(texts)) for _ in range(40)]
            assert helper.failures_total == 0  # no send timed out
        finally:
            os.kill(helper.proc.pid, signal.SIGCONT)
        assert all(p() == expected(texts) for p in pending)
        assert helper.failures_total == 0 and helper.started == 1
    finally:
        helper.close()


def test_a_dead_helper_is_replaced_and_the_batch_still_scored(
        helper: VaderProcess, caplog: pytest.LogCaptureFixture) -> None:
    assert helper.scores(["good"], ["en"]) == expected(["good"])
    assert helper.proc is not None
    old = helper.proc
    os.kill(old.pid, signal.SIGKILL)
    old.wait()
    # Killed while idle: the next batch starts a new helper.
    assert helper.scores(["bad"], ["en"]) == expected(["bad"])
    assert helper.started == 2 and helper.failures_total == 0
    # Killed while scoring: this batch is scored in the calling thread, and counted.
    pending = helper.start(["so happy", "so sad"], ["en", "en"])
    assert helper.proc is not None
    os.kill(helper.proc.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, "bot_analytics.sentiment"):
        assert pending() == expected(["so happy", "so sad"])
    assert helper.failures_total == 1 and helper.proc is None
    assert "sentiment helper process failed" in caplog.text and "exited" in caplog.text
    assert helper.scores(["nice"], ["en"]) == expected(["nice"])
    assert helper.started == 3 and helper.failures == 0  # the run of failures is over


def test_a_helper_that_never_starts_is_given_up(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sentiment, "_BOOT", "import sys; sys.exit(3)")
    h = VaderProcess(max_failures=2)
    with caplog.at_level(logging.WARNING, "bot_analytics.sentiment"):
        for _ in range(4):
            assert h.scores(["awful"], ["en"]) == expected(["awful"])
    assert h.started == 2 and h.failures_total == 2 and not h.active
    assert "exited with status 3" in caplog.text
    assert "scored in the writer's thread from now on" in caplog.text
    h.close()


def test_a_hung_helper_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentiment, "_BOOT",
                        "import sys, time; print('ready', flush=True); time.sleep(600)")
    h = VaderProcess(timeout=0.5)
    assert h.scores(["lovely"], ["en"]) == expected(["lovely"])
    assert h.failures_total == 1 and h.proc is None


def test_close_ends_the_helper(helper: VaderProcess) -> None:
    helper.scores(["fine"], ["en"])
    proc = helper.proc
    assert proc is not None
    helper.close()
    assert helper.proc is None and proc.returncode == 0  # it ended when its input closed


def test_when_the_helper_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _use_helper(True) and not _use_helper(False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert not _use_helper("auto")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert _use_helper("auto")
    with pytest.raises(ConfigError, match=r"sentiment.helper_process"):
        parse_settings({"sentiment": {"helper_process": "sometimes"}}, "bot.yaml")


@pytest.mark.parametrize("helper_process", [True, False])
async def test_stored_sentiment_either_way(database_url: str, tmp_path: Path,
                                           helper_process: bool) -> None:
    """Through the writer into the database, with and without the helper."""
    analytics = Analytics(make_settings(database_url, tmp_path,
                                        sentiment={"helper_process": helper_process}))
    await analytics.start()
    texts = ["I love this shop", "this is terrible", "where is my order", "Это ужасно"]
    for i, text in enumerate(texts, 1):
        analytics.writer.put(event(i, text=text))
    assert await analytics.flush(30)
    health = analytics.health()
    helper = analytics.enricher.analyzer
    await analytics.close()
    got = rows(database_url, "SELECT text, sentiment_score, sentiment FROM interactions "
                             "ORDER BY update_id")
    assert [r.text for r in got] == texts
    want = expected(texts[:3])
    assert [r.sentiment_score for r in got] == pytest.approx([*want, None])
    assert [r.sentiment for r in got] == ["positive", "negative", "neutral", None]
    if helper_process:
        assert isinstance(helper, VaderProcess)
        state = health["sentiment_helper"]
        spent = (state.pop("sending_s"), state.pop("answers_s"))
        assert state == {"running": True, "started": 1, "failures": 0, "given_up": False}
        # One request went out and its answer came back, each taking some time.
        assert spent == (round(helper.sending_s, 3), round(helper.answers_s, 3))
        assert 0 < helper.sending_s < 30 and 0 < helper.answers_s < 30
        assert helper.proc is None  # closing the plugin ended it
    else:
        assert not isinstance(helper, VaderProcess) and "sentiment_helper" not in health


async def test_spooled_rows_carry_their_sentiment(tmp_path: Path) -> None:
    """A batch that goes to the spool instead of the database is scored first."""
    url = f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}"
    analytics = Analytics(make_settings(url, tmp_path, database={"auto_migrate": False},
                                        sentiment={"helper_process": True}))
    analytics.writer.put(event(1, text="I love this shop"))
    assert await analytics.flush(30)
    assert analytics.health()["spooled"] == 1
    await analytics.close()
    spooled = analytics.writer.spool.batches()
    assert [row["sentiment_score"] for b in spooled for row in b.interactions] == \
        pytest.approx(expected(["I love this shop"]))
    assert spooled[0].interactions[0]["sentiment"] == "positive"


def test_descriptors_above_1023_are_waited_on() -> None:
    """select() cannot wait on a descriptor above 1023; a bot with many connections may
    hand the helper's pipes such numbers."""
    read, write = os.pipe()
    high_read, high_write = os.dup2(read, 1500), os.dup2(write, 1501)
    try:
        assert sentiment._ready(high_write, select.POLLOUT, time.monotonic() + 1)
        assert not sentiment._ready(high_read, select.POLLIN, time.monotonic() + 0.05)
        os.write(high_write, b"x\n")
        assert sentiment._ready(high_read, select.POLLIN, time.monotonic() + 1)
    finally:
        for fd in (read, write, high_read, high_write):
            os.close(fd)


async def test_no_other_writer_is_held_up_while_scores_are_awaited(
        database_url: str, tmp_path: Path) -> None:
    """While the writer waits for a batch's scores, its transaction has written nothing:
    another writer can change the member the batch is about to update."""
    import sqlalchemy as sa

    outcomes: list[str] = []

    class Intruding:  # an analyzer whose scores arrive after another writer has written
        def scores(self, texts: list[str], codes: list[str | None]) -> list[float | None]:
            return [0.5] * len(texts)

        def start(self, texts: list[str], codes: list[str | None]) -> Any:
            def result() -> list[float | None]:
                sqlite = database_url.startswith("sqlite")
                other = sa.create_engine(database_url, connect_args={"timeout": 0.3}
                                         if sqlite else {})
                try:
                    with other.begin() as conn:
                        if not sqlite:
                            conn.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
                        conn.execute(sa.text("UPDATE members SET campaign = 'other' "
                                             "WHERE member_id = 1"))
                    outcomes.append("written")
                except sa.exc.OperationalError as error:
                    outcomes.append(f"held up: {error.orig}")
                finally:
                    other.dispose()
                return self.scores(texts, codes)
            return result

    analytics = Analytics(make_settings(database_url, tmp_path),
                          sentiment_analyzer=Intruding())
    await analytics.start()
    analytics.writer.put(event(1, member=1))
    assert await analytics.flush(30)  # member 1 is stored
    analytics.writer.put(event(2, member=1))
    assert await analytics.flush(30)
    await analytics.close()
    assert outcomes == ["written", "written"]
    got = rows(database_url, "SELECT campaign, last_seen FROM members")
    assert len(got) == 1 and got[0].campaign == "other"
    assert [r.sentiment_score for r in rows(
        database_url, "SELECT sentiment_score FROM interactions")] == [0.5, 0.5]


@pytest.mark.parametrize("helper_process", [True, False])
async def test_a_batch_scored_in_parts(tmp_path: Path, helper_process: bool) -> None:
    """A batch of more than one part (writer.SENTIMENT_PART updates): every stored row
    has its own text's score, whichever part it was sent in."""
    from bot_analytics.pipeline.writer import SENTIMENT_PART

    url = f"sqlite:///{tmp_path / 'parts.sqlite3'}"
    analytics = Analytics(make_settings(url, tmp_path, sentiment={
        "helper_process": helper_process}, writer={"flush_at": 1000, "max_batch": 1000}))
    texts = [t for t in ENGLISH if len(t) < 200 and t.strip()]
    n = 2 * SENTIMENT_PART + 37
    for i in range(1, n + 1):
        analytics.writer.put(event(i, member=i % 50, text=texts[i % len(texts)]))
    await analytics.start()
    assert await analytics.flush(60)
    await analytics.close()
    got = rows(url, "SELECT update_id, sentiment_score FROM interactions ORDER BY update_id")
    assert [r.update_id for r in got] == list(range(1, n + 1))
    assert [r.sentiment_score for r in got] == pytest.approx(
        expected([texts[i % len(texts)] for i in range(1, n + 1)]))


def test_admin_health_says_where_sentiment_is_scored(tmp_path: Path) -> None:
    from bot_analytics.admin import _sentiment_state

    def plugin(**sentiment: Any) -> Analytics:
        return Analytics(make_settings(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path,
                                       sentiment=sentiment))

    def state(a: Analytics) -> str:
        return _sentiment_state(a, a.health().get("sentiment_helper"))

    helped = plugin(helper_process=True)
    assert state(helped) == "helper process not running, started 0 times, 0 failures"
    helper = helped.enricher.analyzer
    assert isinstance(helper, VaderProcess)
    helper.scores(["fine"], ["en"])
    assert state(helped) == "helper process running, started 1 time, 0 failures"
    helper.close()
    helper.failures = helper.failures_total = helper.max_failures
    assert state(helped) == ("scored in the writer's thread; the helper process was given "
                             "up after 3 failures")
    assert state(plugin(helper_process=False)) == "scored in the writer's thread"
    assert state(plugin(enabled=False)) == "off"
    # An analyzer of one's own is not used either while sentiment is disabled.
    own = Analytics(make_settings(f"sqlite:///{tmp_path / 'h.sqlite3'}", tmp_path,
                                  sentiment={"enabled": False}),
                    sentiment_analyzer=sentiment.VaderAnalyzer())
    assert state(own) == "off"
