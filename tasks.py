#!/usr/bin/env python3
"""Bootstrap and run the project with nothing but Python 3.11+.

    python3 tasks.py demo      # create .venv, install, run the demo on SQLite
    python3 tasks.py test      # create .venv, install with test extras, lint, run the suite
    python3 tasks.py bench     # run the benchmark scripts

The virtual environment lives in .venv and is reinstalled when pyproject.toml changes.
Extra arguments after the task name go to the program (pytest or bot-analytics demo).
With BOT_ANALYTICS_TEST_EMBEDDINGS=1, ``test`` also installs the optional embeddings
extra (PyTorch and a sentence encoder, about 1.5 GB) and its tests must pass.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an old Python
        sys.exit(f"bot-analytics needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("installing bot-analytics and its dependencies (first run takes a minute)", flush=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    target = f".[{extras}]" if extras else "."
    subprocess.run([*pip, "install", "-e", target], check=True, cwd=ROOT)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench"}:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    if task == "demo":
        _ensure_venv("")
        return subprocess.call([str(BIN / "bot-analytics"), "demo", *rest], cwd=ROOT)
    embeddings = task == "test" and os.environ.get("BOT_ANALYTICS_TEST_EMBEDDINGS") == "1"
    _ensure_venv("dev,embeddings" if embeddings else "dev")
    if task == "test":
        for check in (["ruff", "check", "."], ["mypy", "bot_analytics", "optimizer",
                                                 "integrations", "benchmarks"]):
            if subprocess.call([str(PY), "-m", *check], cwd=ROOT):
                print(f"{' '.join(check)} failed", file=sys.stderr)
                return 1
        return subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT)
    status = 0
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        status |= subprocess.call([str(PY), str(script), *rest], cwd=ROOT)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
