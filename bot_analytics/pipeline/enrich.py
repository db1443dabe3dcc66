"""Turn captured events into storable rows: intent, sentiment, redaction,
pseudonymisation and opt-out filtering. Runs in the writer's worker thread."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, Settings
from ..events import (
    ConversionEvent,
    ExposureEvent,
    FeedbackEvent,
    InteractionEvent,
    MemberEvent,
)
from ..nlp.intents import IntentDetector, Prediction
from ..nlp.redact import clean_text, redact
from ..nlp.sentiment import SentimentAnalyzer, label_for

log = logging.getLogger("bot_analytics.enrich")

#: Event types whose text a person typed (KPIS.md: text interactions).
TEXT_EVENT_TYPES = frozenset({"message", "edited_message", "inline_query"})
ESCALATE_INTENT = "escalate"
_MAX = {"command": 64, "language_code": 16, "error": 128, "payload": 64, "intent": 64}


class Pseudonymizer:
    """Keyed hash of Telegram ids: the same person always maps to the same 63-bit id,
    which cannot be turned back into the user id without the key."""

    def __init__(self, secret: bytes | None):
        self._key = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymizer:
        if not settings.privacy.pseudonymize_members:
            return cls(None)
        secret = os.environ.get(settings.privacy.secret_env)
        if not secret:
            raise ConfigError(
                f"privacy.pseudonymize_members is on, but the environment variable "
                f"{settings.privacy.secret_env} (privacy.secret_env) holding its key is not set")
        return cls(secret.encode())

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def member(self, user_id: int) -> int:
        if self._key is None:
            return user_id
        digest = hmac.new(self._key, str(user_id).encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF

    def chat(self, chat_id: int | None, chat_type: str | None) -> int | None:
        # A private chat's id is the user's id, so it is hashed the same way.
        if chat_id is None or chat_type != "private":
            return chat_id
        return self.member(chat_id)


def derived_member_event(row: dict[str, Any]) -> bool:
    """``start`` rows derive from a /start interaction, which is the counted event."""
    return bool(row["kind"] == "start")


def derived_conversion(row: dict[str, Any]) -> bool:
    """Payment conversions derive from the payment's interaction."""
    return bool(row["source"] == "telegram_payment")


@dataclass
class PreparedBatch:
    """Rows ready to insert; also the unit written to and replayed from the spool."""

    interactions: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    member_events: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    #: One row per member and experiment, with the batch's exposures counted in it.
    exposures: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    #: Fills in what is still being computed (sentiment, in a helper process); see
    #: :meth:`complete`. Not part of what is spooled.
    pending: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def complete(self) -> PreparedBatch:
        """Wait for what is still being computed and fill it into the rows. Every batch
        is completed before its interactions are stored or spooled; the second call
        does nothing."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending()
        return self

    def __len__(self) -> int:
        """Captured events in the batch (derived rows are not counted again)."""
        return (len(self.interactions)
                + sum(1 for e in self.member_events if not derived_member_event(e))
                + sum(1 for c in self.conversions if not derived_conversion(c))
                + sum(int(e["exposures"]) for e in self.exposures)
                + len(self.feedback))


@dataclass(frozen=True)
class StartedSentiments:
    """Sentiment scoring started for some events: the ``id()`` of each event whose text
    is being scored, and a function that waits for the scores, by those ids."""

    ids: frozenset[int]
    collect: Callable[[], dict[int, float | None]]


@dataclass
class EnrichStats:
    enrichment_failures: int = 0
    filtered_opt_out: int = 0
    row_failures: int = 0


def _short(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    return clean_text(value)[: _MAX[key]]


class Enricher:
    def __init__(self, settings: Settings, detector: IntentDetector,
                 analyzer: SentimentAnalyzer | None, pseudonymizer: Pseudonymizer):
        self.settings = settings
        self.detector = detector
        self.analyzer = analyzer
        self.pseudo = pseudonymizer
        self.opted_out: set[tuple[str, int]] = set()
        self.stats = EnrichStats()

    @property
    def scores_sentiment(self) -> bool:
        """Whether texts get a sentiment score: an analyzer, and ``sentiment.enabled``."""
        return self.analyzer is not None and self.settings.sentiment.enabled

    def close(self) -> None:
        """Stop what the analyzer runs beside the writer (its helper process, if any)."""
        close = getattr(self.analyzer, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("could not stop the sentiment analyzer")

    # -- text -------------------------------------------------------------------------
    def _store_text(self, text: str | None) -> str | None:
        if text is None or not self.settings.privacy.store_text:
            return None
        text = clean_text(text)
        return redact(text) if self.settings.privacy.redact else text

    # -- steps --------------------------------------------------------------------------
    def _intents(self, events: Sequence[InteractionEvent]) -> list[Prediction | None]:
        try:
            preds = self.detector.detect(events)
            if len(preds) != len(events):
                raise ValueError(f"intent detector returned {len(preds)} results "
                                 f"for {len(events)} events")
            return preds
        except Exception:
            log.exception("intent detection failed for a batch of %d events", len(events))
            self.stats.enrichment_failures += len(events)
            return [None] * len(events)

    def start_sentiments(self, events: Sequence[object]) -> StartedSentiments:
        """Start scoring the typed texts among ``events``. An analyzer with ``start``
        scores them meanwhile, in another process; the writer starts each part of a
        batch as soon as it has read it."""
        if not self.scores_sentiment:
            return StartedSentiments(frozenset(), dict)
        scored = [e for e in events if isinstance(e, InteractionEvent)
                  and e.event_type in TEXT_EVENT_TYPES and e.text]
        if self.opted_out:  # their texts are not looked at
            member = self.pseudo.member
            scored = [e for e in scored
                      if (e.tenant_id, member(e.member_id)) not in self.opted_out]
        ids = frozenset(id(e) for e in scored)
        if not scored or self.analyzer is None:
            return StartedSentiments(ids, dict)
        texts = [clean_text(e.text or "") for e in scored]
        codes = [e.language_code for e in scored]

        def failed() -> dict[int, float | None]:
            log.exception("sentiment analysis failed for a batch of %d texts", len(scored))
            self.stats.enrichment_failures += len(scored)
            return {}

        try:
            start = getattr(self.analyzer, "start", None)
            if start is not None:
                pending = start(texts, codes)
            else:
                scores = self.analyzer.scores(texts, codes)
                pending = lambda: scores  # noqa: E731
        except Exception:
            failed()
            return StartedSentiments(ids, dict)

        def collect() -> dict[int, float | None]:
            try:
                # ``scored`` keeps the events alive, so their ids stay theirs.
                return {id(e): score for e, score in zip(scored, pending(), strict=True)}
            except Exception:
                return failed()

        return StartedSentiments(ids, collect)

    def prepare(self, items: Iterable[InteractionEvent | MemberEvent | ConversionEvent
                                      | ExposureEvent | FeedbackEvent],
                started: Sequence[StartedSentiments] = ()) -> PreparedBatch:
        """Rows for ``items``; ``started`` holds scoring already started for some of them
        (:meth:`start_sentiments`), the rest is started here. The sentiment may still be
        being scored: call the batch's :meth:`~PreparedBatch.complete` before reading
        it."""
        interactions: list[InteractionEvent] = []
        lifecycle: list[MemberEvent] = []
        conversions: list[ConversionEvent] = []
        exposures: dict[tuple[str, str, int], dict[str, Any]] = {}
        ratings: list[dict[str, Any]] = []
        pseudo = self.pseudo
        for item in items:
            member = pseudo.member(item.member_id)
            if (item.tenant_id, member) in self.opted_out:
                self.stats.filtered_opt_out += 1
                continue
            if isinstance(item, InteractionEvent):
                interactions.append(item)
            elif isinstance(item, ConversionEvent):
                conversions.append(item)
            elif isinstance(item, ExposureEvent):
                key = (item.tenant_id, item.experiment, member)
                row = exposures.get(key)
                if row is None:
                    exposures[key] = {
                        "tenant_id": item.tenant_id, "experiment": item.experiment,
                        "member_id": member, "bot_id": item.bot_id, "variant": item.variant,
                        "first_exposed_at": item.ts, "last_exposed_at": item.ts,
                        "exposures": 1}
                else:
                    row["first_exposed_at"] = min(row["first_exposed_at"], item.ts)
                    row["last_exposed_at"] = max(row["last_exposed_at"], item.ts)
                    row["exposures"] += 1
            elif isinstance(item, FeedbackEvent):
                ratings.append({
                    "tenant_id": item.tenant_id, "bot_id": item.bot_id,
                    "update_id": item.update_id, "ts": item.ts, "member_id": member,
                    "chat_id": pseudo.chat(item.chat_id, "private")
                    if item.chat_id == item.member_id else item.chat_id,
                    "csat_rating": item.rating, "trigger": item.trigger})
            else:
                lifecycle.append(item)

        batch = PreparedBatch()
        members: dict[tuple[str, int, int], dict[str, Any]] = {}

        def touch(tenant: str, bot: int, member: int, ts: Any, lang: str | None,
                  campaign: str | None) -> None:
            key = (tenant, bot, member)
            row = members.get(key)
            if row is None:
                members[key] = {"tenant_id": tenant, "bot_id": bot, "member_id": member,
                                "first_seen": ts, "last_seen": ts, "language_code": lang,
                                "campaign": campaign, "blocked": False, "opted_out": False}
                return
            row["first_seen"] = min(row["first_seen"], ts)
            row["last_seen"] = max(row["last_seen"], ts)
            row["language_code"] = lang or row["language_code"]
            row["campaign"] = row["campaign"] or campaign

        # The texts are scored (in a helper process, where there is one) while this
        # thread labels intents, builds the rows and reads the sessions the rows
        # continue; batch.complete() fills the scores in before anything is written.
        # A part with nothing to score (sentiment off, no typed text) sent no request.
        pending = [p for p in started if p.ids]
        covered = frozenset().union(*(p.ids for p in pending))
        rest = [e for e in interactions if id(e) not in covered]
        if rest and (more := self.start_sentiments(rest)).ids:
            pending.append(more)
        # Each row and the id of its event, in two lists rather than a pair a row: see
        # nlp.intents.certain() for why a batch makes as few tuples as it can.
        rows: list[dict[str, Any]] = []
        row_events: list[int] = []
        if interactions:
            intents = self._intents(interactions)
            for ev, pred in zip(interactions, intents, strict=True):
                try:
                    member = pseudo.member(ev.member_id)
                    chat = pseudo.chat(ev.chat_id, ev.chat_type)
                    intent = ev.intent_override or (pred.intent if pred else None)
                    confidence = (1.0 if ev.intent_override else
                                  (pred.confidence if pred else None))
                    lang = _short(ev.language_code, "language_code")
                    is_start = ev.command == "/start"
                    payload = _short(ev.command_args, "payload") if is_start else None
                    row = {
                        "tenant_id": ev.tenant_id, "bot_id": ev.bot_id,
                        "update_id": ev.update_id, "event_type": ev.event_type, "ts": ev.ts,
                        "chat_id": chat, "chat_type": ev.chat_type, "member_id": member,
                        "language_code": lang, "text": self._store_text(ev.text),
                        "command": _short(ev.command, "command"),
                        "intent": _short(intent, "intent"), "intent_confidence": confidence,
                        "sentiment": None, "sentiment_score": None, "handled": ev.handled,
                        "error": _short(ev.error, "error"),
                        "handler_time_ms": ev.handler_time_ms,
                        "response_text": self._store_text(ev.response_text),
                        "response_time_ms": ev.response_time_ms,
                        "reply_count": ev.reply_count, "session_id": None,
                        "escalated": ev.escalated or intent == ESCALATE_INTENT,
                        "monetization_event": False,
                    }
                    batch.interactions.append(row)
                    rows.append(row)
                    row_events.append(id(ev))
                    touch(ev.tenant_id, ev.bot_id, member, ev.ts, lang, payload)
                    if is_start:
                        batch.member_events.append({
                            "tenant_id": ev.tenant_id, "bot_id": ev.bot_id,
                            "update_id": ev.update_id, "ts": ev.ts, "member_id": member,
                            "chat_id": chat, "kind": "start", "payload": payload})
                except Exception:
                    log.exception("could not prepare update %s of bot %s; it is not stored",
                                  ev.update_id, ev.bot_id)
                    self.stats.row_failures += 1

        def fill() -> None:
            scores: dict[int, float | None] = {}
            for p in pending:  # every request is collected, used or not
                scores.update(p.collect())
            # Each scored event is kept alive by its request, so no other event can have
            # taken its id since the rows were built.
            for row, key in zip(rows, row_events, strict=True):
                score = scores.get(key)
                if score is not None:
                    row["sentiment"] = label_for(score)
                    row["sentiment_score"] = score

        if pending:
            batch.pending = fill

        for me in lifecycle:
            member = pseudo.member(me.member_id)
            batch.member_events.append({
                "tenant_id": me.tenant_id, "bot_id": me.bot_id, "update_id": me.update_id,
                "ts": me.ts, "member_id": member,
                "chat_id": pseudo.chat(me.chat_id, "private") if me.chat_id == me.member_id
                else me.chat_id,
                "kind": me.kind, "payload": _short(me.payload, "payload")})
            touch(me.tenant_id, me.bot_id, member, me.ts, None, None)
            row = members[(me.tenant_id, me.bot_id, member)]
            if me.kind in ("blocked", "unblocked"):
                row["blocked"] = me.kind == "blocked"
        for cv in conversions:
            member = pseudo.member(cv.member_id)
            batch.conversions.append({
                "tenant_id": cv.tenant_id, "bot_id": cv.bot_id, "ts": cv.ts,
                "member_id": member,
                "chat_id": pseudo.chat(cv.chat_id, "private") if cv.chat_id == cv.member_id
                else cv.chat_id,
                "outcome": cv.outcome, "value": cv.value, "amount_minor": cv.amount_minor,
                "currency": cv.currency, "external_id": cv.external_id, "source": cv.source,
                "checkout_completed": cv.checkout_completed,
                "details": clean_text(cv.details) if cv.details is not None else None})
        batch.members = list(members.values())
        batch.exposures = list(exposures.values())
        batch.feedback = ratings
        return batch
