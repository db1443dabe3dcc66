"""Messages for people: HTML escaped, split within Telegram's limits."""

from __future__ import annotations

import html
from collections.abc import Iterable

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line ends. Tags other than
    ``<pre>`` never span lines; a ``<pre>`` block cut in two is closed at the end of one
    piece and opened again at the start of the next. A single line longer than the limit
    is cut at the limit, outside any tag or entity."""
    budget = limit - len("<pre></pre>")
    pieces: list[str] = []
    current = ""
    in_pre = False     # inside a <pre> block at the end of ``current``
    for line in text.split("\n"):
        while len(line) > budget:
            cut = _safe_cut(line, budget)
            if current:
                pieces.append(current)
            current, line = line[:cut], line[cut:]
            pieces.append(current)
            current = ""
        candidate = line if not current else current + "\n" + line
        if len(candidate) > budget:
            pieces.append(current + ("</pre>" if in_pre else ""))
            current = ("<pre>" if in_pre else "") + line
        else:
            current = candidate
        in_pre = _pre_open(in_pre, line)
    if current or not pieces:
        pieces.append(current)
    return pieces


def _pre_open(was_open: bool, line: str) -> bool:
    """Whether a <pre> block is open after ``line``."""
    opened, closed = line.rfind("<pre>"), line.rfind("</pre>")
    if opened == closed == -1:
        return was_open
    return opened > closed


def _safe_cut(line: str, limit: int) -> int:
    """The last position at or before ``limit`` that is not inside a tag or an entity."""
    cut = limit
    opening, closing = line.rfind("<", 0, cut), line.rfind(">", 0, cut)
    if opening > closing:
        cut = opening
    amp, semi = line.rfind("&", 0, cut), line.rfind(";", 0, cut)
    if amp > semi and cut - amp < 10:
        cut = amp
    return max(cut, 1)


def change_arrow(change: float | None) -> str:
    if change is None:
        return ""
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    return f"{arrow} {abs(change):.1%}"


def table(rows: Iterable[tuple[str, str, str]]) -> str:
    """Aligned name / value / change columns in a <pre> block."""
    rows = list(rows)
    if not rows:
        return ""
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"{esc(name):{width}}  {esc(value):>{vwidth}}  {esc(change)}".rstrip()
             for name, value, change in rows]
    return "<pre>" + "\n".join(lines) + "</pre>"
