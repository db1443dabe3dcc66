"""Append-only spool of prepared batches for when the database is away.

One JSON line per batch, written with fsync so a crash keeps what was spooled. Rows are
already redacted and pseudonymised: the spool holds nothing the database would not.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from .enrich import PreparedBatch

_DATETIME_KEYS = frozenset({"ts", "first_seen", "last_seen", "first_exposed_at",
                            "last_exposed_at"})


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool a value of type {type(value).__name__}")


def _line(batch: PreparedBatch) -> str:
    return json.dumps({"v": 1, "interactions": batch.interactions, "members": batch.members,
                       "member_events": batch.member_events,
                       "conversions": batch.conversions, "exposures": batch.exposures,
                       "feedback": batch.feedback},
                      default=_default, ensure_ascii=False)


def _restore(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for key in _DATETIME_KEYS & row.keys():
            if isinstance(row[key], str):
                row[key] = datetime.fromisoformat(row[key])
    return rows


class Spool:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, batch: PreparedBatch) -> None:
        line = _line(batch)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def batches(self) -> list[PreparedBatch]:
        """Every spooled batch, oldest first. A torn last line (crash mid-write) is
        skipped; the batches before it are intact."""
        if not self:
            return []
        out: list[PreparedBatch] = []
        with self._lock, self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                data = json.loads(line)
                out.append(PreparedBatch(_restore(data["interactions"]),
                                         _restore(data["members"]),
                                         _restore(data["member_events"]),
                                         _restore(data.get("conversions", [])),
                                         _restore(data.get("exposures", [])),
                                         _restore(data.get("feedback", []))))
        return out

    def keep_from(self, index: int, batches: list[PreparedBatch]) -> None:
        """Replace the spool with ``batches[index:]`` (the ones not yet replayed)."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with self._lock:
            if index >= len(batches):
                self.path.unlink(missing_ok=True)
                return
            with tmp.open("w", encoding="utf-8") as fh:
                for b in batches[index:]:
                    fh.write(_line(b) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
