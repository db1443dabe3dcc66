"""Labelled intent examples from files: CSV or JSONL with ``text`` and ``intent``, or a
YAML file (config.yaml's ``intents.examples``, or a plain ``{intent: [examples]}``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class TrainingDataError(ValueError):
    """A training file that cannot be read; the message names the file and line."""


def _row(path: Path, line: int, text: Any, intent: Any) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise TrainingDataError(f"{path}:{line}: empty or missing text")
    if not isinstance(intent, str) or not intent.strip():
        raise TrainingDataError(f"{path}:{line}: empty or missing intent")
    return text, intent.strip()


def _csv(path: Path) -> list[tuple[str, str]]:
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise TrainingDataError(f"{path}: the file is empty") from None
        if "text" not in header or "intent" not in header:
            raise TrainingDataError(
                f"{path}:1: the header must name the columns text and intent, got "
                f"{', '.join(header) or 'nothing'}")
        ti, ii = header.index("text"), header.index("intent")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise TrainingDataError(f"{path}:{line}: {len(row)} fields, the header "
                                        f"has {len(header)} (quote texts holding commas)")
            out.append(_row(path, line, row[ti], row[ii]))
    return out


def _jsonl(path: Path) -> list[tuple[str, str]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{path}:{line}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise TrainingDataError(f"{path}:{line}: expected an object with text "
                                        "and intent")
            out.append(_row(path, line, obj.get("text"), obj.get("intent")))
    return out


def examples_from_mapping(mapping: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    out = []
    for intent, texts in mapping.items():
        if not isinstance(texts, list):
            raise TrainingDataError(f"{where}: {intent}: expected a list of example "
                                    f"texts, got {type(texts).__name__}")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise TrainingDataError(f"{where}: {intent}[{i}]: empty or not a text")
            out.append((text, str(intent)))
    return out


def _yaml(path: Path) -> list[tuple[str, str]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("intents"), dict):
        doc = doc["intents"].get("examples")
        if not doc:
            raise TrainingDataError(f"{path}: intents.examples is empty or missing")
        return examples_from_mapping(doc, f"{path}: intents.examples")
    if isinstance(doc, dict):
        return examples_from_mapping(doc, str(path))
    raise TrainingDataError(f"{path}: expected a mapping of intent to example texts")


def load_examples(path: str | Path) -> tuple[list[str], list[str]]:
    """Texts and intents from a .csv, .jsonl or .yaml file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _csv(path)
        elif suffix in {".jsonl", ".ndjson"}:
            rows = _jsonl(path)
        elif suffix in {".yaml", ".yml"}:
            rows = _yaml(path)
        else:
            raise TrainingDataError(f"{path}: unknown format {suffix or '(no suffix)'}; "
                                    "use .csv, .jsonl or .yaml")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start})") from None
    if not rows:
        raise TrainingDataError(f"{path}: no examples")
    return [t for t, _ in rows], [i for _, i in rows]
