"""A/B experiments inside the bot: definitions, deterministic assignment, variants.

Assignment needs no database read: a member's variant is a hash of the experiment's salt
and the member's Telegram user id, so every process, restart and version serves the same
variant to the same person (tests pin known assignments). The first exposure and the
count of exposures are written by the background writer to ``experiment_assignments``.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import ExperimentSettings

_SCALE = float(2 ** 64)


def bucket(salt: str, member_id: int, purpose: str = "variant") -> float:
    """A number in [0, 1), uniform over members and fixed for (salt, member, purpose):
    the first 8 bytes of SHA-256 of ``"{purpose}:{salt}:{member_id}"``."""
    digest = hashlib.sha256(f"{purpose}:{salt}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


class UnknownExperiment(KeyError):
    """``variant()`` was asked for an experiment that is not defined."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown experiment"


@dataclass(frozen=True)
class Variant:
    """The variant a member gets. ``counted`` is False when the member is outside the
    experiment (traffic share, before the start, after the stop, no person): they get the
    control (or, once stopped, the winner) and are not part of the analysis."""

    experiment: str
    name: str
    payload: Any = None
    counted: bool = True

    def render(self, **values: Any) -> str:
        """The payload's text with ``{placeholders}`` filled: a string payload, or the
        ``text`` key of a mapping payload."""
        template = self.payload
        if isinstance(template, Mapping):
            template = template.get("text")
        if not isinstance(template, str):
            raise ValueError(f"variant {self.experiment}:{self.name} has no text payload "
                             "to render")
        try:
            return string.Formatter().vformat(template, (), values)
        except (KeyError, IndexError) as exc:
            raise ValueError(f"variant {self.experiment}:{self.name}: the template needs "
                             f"a value for {exc}") from None


@dataclass(frozen=True)
class ExperimentDef:
    """One experiment as the plugin serves it: its settings and its state."""

    tenant_id: str
    name: str
    settings: ExperimentSettings
    source: str = "config"
    #: Set by ``bot-analytics ab stop`` (or the stop time in its settings).
    stopped_at: datetime | None = None
    winner: str | None = None
    created_at: datetime | None = None

    @property
    def salt(self) -> str:
        return self.settings.salt or self.name

    @property
    def control(self) -> str:
        return self.settings.control_name

    @property
    def metric(self) -> str:
        return self.settings.metric

    def end(self) -> datetime | None:
        """When the experiment stopped or is planned to stop."""
        ends = [t for t in (self.stopped_at, self.settings.stop) if t is not None]
        return min(ends) if ends else None

    def is_stopped(self, now: datetime) -> bool:
        end = self.end()
        return end is not None and now >= end

    def served_after_stop(self) -> str:
        return self.winner or self.settings.winner or self.control

    def status(self, now: datetime) -> str:
        if self.is_stopped(now):
            return "stopped"
        start = self.settings.start
        return "scheduled" if start is not None and now < start else "running"

    def payload(self, variant: str) -> Any:
        for v in self.settings.variants:
            if v.name == variant:
                return v.payload
        raise KeyError(variant)

    def assign(self, member_id: int) -> str | None:
        """The member's variant, or None when the traffic share leaves them out. Raising
        the share keeps everyone already in; the variant does not depend on it."""
        s = self.settings
        if s.traffic < 1.0 and bucket(self.salt, member_id, "traffic") >= s.traffic:
            return None
        total = sum(v.weight for v in s.variants)
        point = bucket(self.salt, member_id) * total
        acc = 0.0
        for v in s.variants:
            acc += v.weight
            if point < acc:
                return v.name
        return s.variants[-1].name

    def choose(self, member_id: int | None, now: datetime) -> Variant:
        """What to serve now; ``counted`` says whether this is an exposure to record."""
        if self.is_stopped(now):
            name = self.served_after_stop()
            return Variant(self.name, name, self.payload(name), counted=False)
        start = self.settings.start
        if member_id is None or (start is not None and now < start):
            return Variant(self.name, self.control, self.payload(self.control), counted=False)
        assigned = self.assign(member_id)
        if assigned is None:
            return Variant(self.name, self.control, self.payload(self.control), counted=False)
        return Variant(self.name, assigned, self.payload(assigned))

    def definition_json(self) -> str:
        return json.dumps(self.settings.model_dump(mode="json", exclude_none=True),
                          sort_keys=True)


def from_settings(name: str, settings: ExperimentSettings, default_tenant: str
                  ) -> ExperimentDef:
    return ExperimentDef(settings.tenant or default_tenant, name, settings)


__all__ = ["ExperimentDef", "UnknownExperiment", "Variant", "bucket", "from_settings"]
