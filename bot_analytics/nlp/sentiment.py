"""Sentiment of text interactions.

The default analyzer is VADER (English only). Its compound score c gives the label:
``positive`` if c >= 0.05, ``negative`` if c <= -0.05, else ``neutral``. Text marked as
another language (by the sender's Telegram ``language_code`` or by its script) gets no
sentiment at all: a wrong ``neutral`` would skew every rate.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

log = logging.getLogger("bot_analytics.sentiment")

POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05


def label_for(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


class SentimentAnalyzer(Protocol):
    """Scores a batch of texts; ``None`` where the analyzer cannot score a text.

    An analyzer may also have ``start(texts, language_codes)``, which returns at once
    with a function that gives the scores (as :class:`VaderProcess` does): the writer
    then does the rest of the batch's work before it asks for them."""

    def scores(self, texts: Sequence[str], language_codes: Sequence[str | None]
               ) -> list[float | None]: ...


def mostly_latin(text: str) -> bool:
    """True when at least half of the letters are Latin (or there are no letters)."""
    if text.isascii():
        return True
    letters = latin = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if ch < "\u0250":  # Basic Latin through Latin Extended-B
                latin += 1
    return letters == 0 or latin * 2 >= letters


class VaderAnalyzer:
    """VADER compound scores for text in the configured languages."""

    def __init__(self, languages: Sequence[str] = ("en",), use_language_code: bool = True):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, SentiText

        self._vader = SentimentIntensityAnalyzer()
        self._lexicon = self._vader.lexicon
        self._vader_word = SentiText._strip_punc_if_word  # how VADER cuts out a word
        # VADER reads emoji as words. None in its list is ASCII, so an ASCII text has
        # none; should a list ever hold one, every text goes to VADER.
        self._ascii_emoji = any(e.isascii() for e in self._vader.emojis)
        self._languages = tuple(lang.lower() for lang in languages)
        self._use_language_code = use_language_code

    def understands(self, text: str, language_code: str | None) -> bool:
        if not text or not text.strip():
            return False
        if self._use_language_code and language_code:
            primary = language_code.lower().split("-")[0]
            if primary not in self._languages:
                return False
        return mostly_latin(text)

    def score(self, text: str, language_code: str | None = None) -> float | None:
        if not self.understands(text, language_code):
            return None
        if text.isascii() and not self._ascii_emoji and not self._has_lexicon_word(text):
            return 0.0  # what VADER gives such a text, without its per-word rules
        return float(self._vader.polarity_scores(text)["compound"])

    def _has_lexicon_word(self, text: str) -> bool:
        """Whether any word of an emoji-free text, cut out as VADER cuts it (split on
        white space, then VADER's own function strips punctuation from both ends unless
        that leaves two characters or fewer), is in VADER's lexicon. Only such words
        carry a valence: negations, boosters, 'but' and punctuation only scale it, so a
        text without one scores exactly 0."""
        lexicon, vader_word = self._lexicon, self._vader_word
        return any(vader_word(word).lower() in lexicon for word in text.split())

    def scores(self, texts: Sequence[str], language_codes: Sequence[str | None]
               ) -> list[float | None]:
        return [self.score(t, lang) for t, lang in zip(texts, language_codes, strict=True)]


# -- VADER in a helper process ------------------------------------------------------------
# VADER is pure Python and holds the GIL; scoring a batch in a second process lets the
# writer's thread read, label and store the batch meanwhile, on another core. The helper
# runs this file on its own (not the bot_analytics package, whose import costs seconds):
# one JSON line in, ``[number, texts, language codes]``; one JSON line out, ``[number,
# scores]``. The number pairs an answer with its request, so that the answer to a batch
# whose scores were never collected cannot be taken for the next one's.

_BOOT = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('bot_analytics_sentiment', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module.serve(sys.argv[2])\n"
)


def serve(config: str) -> None:
    """The helper's loop: answer each request line on stdin until stdin closes."""
    import signal

    # Ctrl+C in a terminal reaches the whole process group; the helper ends when the
    # bot closes its stdin (or exits), not before.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    languages, use_language_code = json.loads(config)
    analyzer = VaderAnalyzer(languages, use_language_code)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        number, texts, codes = json.loads(line)
        out.write(json.dumps([number, analyzer.scores(texts, codes)]) + "\n")
        out.flush()


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Wait until ``fd`` can be read or written (``event``), or until ``deadline``. poll()
    rather than select(): a bot with many connections may hold descriptors above 1023."""
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


#: Bytes the pipe to the helper holds (Linux; up to /proc/sys/fs/pipe-max-size, 1 MiB by
#: default): about 20,000 texts of a few words. With the default 64 KiB, the writer's
#: thread, which reads a batch faster than VADER scores it, waited for the helper to take
#: each part before it could send the next (about a second in every 200,000 events).
PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Let the pipe ``fd`` writes to hold :data:`PIPE_BYTES`, where the system allows it;
    elsewhere it keeps its size, and sending only waits more."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


class HelperFailed(RuntimeError):
    """The helper process could not answer (it failed to start, died, or timed out)."""


class VaderProcess:
    """:class:`VaderAnalyzer` run in a helper process (POSIX only).

    :meth:`start` sends a batch and returns at once with a function that waits for its
    scores; meanwhile the caller's thread does other work. When the helper cannot answer,
    the batch is scored in the calling thread instead (the same scores), the failure is
    logged and counted, and the next batch starts a new helper; after ``max_failures``
    failures in a row the helper is given up and everything is scored in-thread.
    """

    def __init__(self, languages: Sequence[str] = ("en",), use_language_code: bool = True,
                 *, timeout: float = 60.0, max_failures: int = 3):
        self.local = VaderAnalyzer(languages, use_language_code)
        self._config = json.dumps([list(languages), use_language_code])
        self.timeout = timeout
        self.max_failures = max_failures
        self.failures = 0  # in a row
        self.failures_total = 0
        self.started = 0  # helpers started
        #: Seconds the calling thread spent handing texts to the helper and getting its
        #: answers: what scoring elsewhere did not take off that thread.
        self.sending_s = 0.0
        self.answers_s = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self._rest = b""
        self._number = 0  # of the latest request

    @property
    def active(self) -> bool:
        """Whether batches go to a helper process (False once it has been given up)."""
        return self.failures < self.max_failures

    # -- the helper ----------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(Path(__file__).resolve()), self._config],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert proc.stdin is not None and proc.stdout is not None
        _widen_pipe(proc.stdin.fileno())
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        self.proc, self._rest = proc, b""
        self.started += 1
        try:
            if self._read_line(time.monotonic() + self.timeout) != b"ready":
                raise HelperFailed("the sentiment helper process did not say it was ready")
        except BaseException:
            self._stop(kill=True)
            raise
        return proc

    def _send(self, data: bytes, deadline: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            if not _ready(fd, select.POLLOUT, deadline):
                raise HelperFailed(f"the sentiment helper process took no input for "
                                   f"{self.timeout:g} s")
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except OSError as error:  # BrokenPipeError: it has died
                raise HelperFailed(f"the sentiment helper process is gone ({error})"
                                   ) from error

    def _read_line(self, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks = [self._rest]
        while b"\n" not in chunks[-1]:
            if not _ready(fd, select.POLLIN, deadline):
                raise HelperFailed(f"the sentiment helper process gave no answer in "
                                   f"{self.timeout:g} s")
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                try:
                    code: int | None = self.proc.wait(1)  # its output closed: it is ending
                except subprocess.TimeoutExpired:
                    code = None
                raise HelperFailed("the sentiment helper process exited"
                                   + (f" with status {code}" if code is not None else ""))
            chunks.append(chunk)
        line, _, self._rest = b"".join(chunks).partition(b"\n")
        return line

    def _stop(self, kill: bool = False) -> None:
        """End the helper: by closing its input, or at once (``kill``) when it failed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill and proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(5)  # its stdin is closed: it ends by itself
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the helper process (a later batch starts a new one)."""
        self._stop()

    # -- scoring ---------------------------------------------------------------------------
    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        self.failures_total += 1
        self._stop(kill=True)
        given_up = "" if self.active else (
            f"; after {self.failures} failures in a row sentiment is scored in the "
            f"writer's thread from now on")
        log.warning("bot-analytics: sentiment helper process failed (%s); the batch is "
                    "scored in the writer's thread%s", error, given_up)

    def start(self, texts: Sequence[str], language_codes: Sequence[str | None]
              ) -> Callable[[], list[float | None]]:
        """Send a batch to the helper; the returned function waits for its scores."""
        if not texts or not self.active:
            return lambda: self.local.scores(texts, language_codes)
        try:
            deadline = time.monotonic() + self.timeout
            if self.proc is None or self.proc.poll() is not None:
                self._stop()
                self._spawn()
            self._number += 1
            number = self._number
            request = json.dumps([number, list(texts), list(language_codes)])
            sending = time.perf_counter()
            try:
                self._send(request.encode() + b"\n", deadline)
            finally:
                self.sending_s += time.perf_counter() - sending
        except (HelperFailed, OSError, ValueError, subprocess.SubprocessError) as error:
            self._failed(error)
            return lambda: self.local.scores(texts, language_codes)

        def result() -> list[float | None]:
            try:
                if self.proc is None:
                    raise HelperFailed("the sentiment helper process was stopped")
                deadline = time.monotonic() + self.timeout
                answered = -1
                waiting = time.perf_counter()
                try:
                    while answered < number:  # skip answers nobody collected
                        answered, scores = json.loads(self._read_line(deadline))
                finally:
                    self.answers_s += time.perf_counter() - waiting
                if answered != number or not isinstance(scores, list) \
                        or len(scores) != len(texts):
                    raise HelperFailed("the sentiment helper process answered with "
                                       "something other than one score per text")
            except (HelperFailed, OSError, ValueError) as error:
                self._failed(error)
                return self.local.scores(texts, language_codes)
            self.failures = 0
            return scores

        return result

    def scores(self, texts: Sequence[str], language_codes: Sequence[str | None]
               ) -> list[float | None]:
        return self.start(texts, language_codes)()
