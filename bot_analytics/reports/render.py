"""A report for people: Telegram messages (HTML within Telegram's limits) and pictures,
a stand-alone HTML page with its charts inside, Markdown with its charts beside it, or
JSON."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..admin.text import CAPTION_LIMIT, change_arrow, esc, split_message, table
from ..kpis.queries import format_value
from .assemble import Report
from .deliver import Piece

_PERIOD_BEFORE = {"daily": "the day before", "weekly": "the week before",
                  "monthly": "the month before"}


def _anomaly_line(a: object) -> str:
    from ..alerts import describe

    return describe(a)  # type: ignore[arg-type]


def telegram_text(report: Report) -> str:
    lines = [f"<b>📊 {esc(report.title)}</b>",
             f"tenant {esc(report.tenant_id)}, bot {report.bot_id}"]
    if "summary" in report.sections:
        lines.append("")
        lines.append(f"<b>Summary</b> (change against {_PERIOD_BEFORE[report.kind]})")
        if report.summary:
            lines.append(table([(r.metric.replace("_", " "), r.formatted,
                                 change_arrow(r.change)) for r in report.summary]))
        else:
            lines.append("No KPIs for this period.")
    if "anomalies" in report.sections:
        lines.append("")
        lines.append("<b>Anomalies</b>")
        if report.anomalies:
            lines += [_anomaly_line(a) for a in report.anomalies[:10]]
        else:
            lines.append("None: every day was within its weekly rhythm.")
    if "experiments" in report.sections:
        lines.append("")
        lines.append("<b>Experiments</b>")
        if not report.experiments:
            lines.append("None running.")
        for e in report.experiments:
            decision = e.decision + (f" ({e.winner})" if e.winner else "")
            lines.append(f"• <b>{esc(e.name)}</b>: {esc(e.status)}, {e.members:,} members, "
                         f"{esc(decision)}. {esc(e.action)}")
    if "recommendations" in report.sections:
        lines.append("")
        if report.optimizer_run is None:
            lines.append("<b>Recommendations</b>")
            lines.append("No optimizer run yet (`bot-analytics optimize`, or the weekly job).")
        else:
            lines.append(f"<b>Recommendations</b> ({esc(report.optimizer_run)})")
            for i, rec in enumerate(report.recommendations, 1):
                lines.append(f"{i}. [{esc(rec['implementation_priority'])}] "
                             f"<b>{esc(rec['title'])}</b>: "
                             f"{esc(rec['impact_estimate']['text'])}")
            if not report.recommendations:
                lines.append("Nothing stands out.")
    if "unknown" in report.sections:
        lines.append("")
        u = report.unknown
        if u is None or not u.clusters:
            lines.append("<b>Not understood</b>: no unknown or unhandled messages.")
        else:
            lines.append(f"<b>Not understood</b> ({u.messages:,} messages)")
            for i, c in enumerate(u.clusters, 1):
                example = f" “{esc(c.examples[0])}”" if c.examples else ""
                terms = esc(", ".join(c.terms[:3]))
                lines.append(f"{i}. {c.size:,} ({c.share:.0%}) {terms}:{example}")
    return "\n".join(lines)


def telegram_pieces(report: Report) -> list[Piece]:
    """The messages, then the charts with their titles as captions."""
    pieces = [Piece(text) for text in split_message(telegram_text(report))]
    pieces += [Piece(photo=c.png, caption=esc(c.title)[:CAPTION_LIMIT],
                     filename=f"{c.name}.png") for c in report.charts]
    return pieces


def _rows_html(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.metric.replace('_', ' '))}</td>"
        f"<td class=num>{html.escape(r.formatted)}</td>"
        f"<td class=num>{html.escape(format_value(r.metric, r.previous)) if r.previous is not None else ''}</td>"  # noqa: E501
        f"<td class=num>{html.escape(change_arrow(r.change))}</td></tr>"
        for r in report.summary)
    return ("<table><tr><th>metric</th><th>value</th><th>before</th><th>change</th></tr>"
            f"{rows}</table>")


def to_html(report: Report) -> str:
    """A stand-alone page: the charts are inside it as data URIs."""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<title>{html.escape(report.title)}</title><style>"
             "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse}td,th{padding:.2em "
             ".8em;border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}"
             "img{max-width:100%;margin:1em 0}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>",
             f"<p>tenant {html.escape(report.tenant_id)}, bot {report.bot_id}</p>"]
    text = telegram_text(report)
    # The Telegram text's sections, as paragraphs (it is already HTML-escaped).
    body = text.split("\n", 2)[2] if text.count("\n") >= 2 else ""
    if "summary" in report.sections and report.summary:
        summary_table = table([(r.metric.replace("_", " "), r.formatted,
                                change_arrow(r.change)) for r in report.summary])
        body = body.replace(summary_table, _rows_html(report))
    parts.append("<p>" + body.replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>")
    for c in report.charts:
        data = base64.b64encode(c.png).decode("ascii")
        parts.append(f"<h2>{html.escape(c.title)}</h2>"
                     f"<img alt=\"{html.escape(c.title)}\" src=\"data:image/png;base64,{data}\">")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_markdown(report: Report, chart_dir: Path | None = None, prefix: str = "") -> str:
    """Markdown; with ``chart_dir`` the charts are written there as PNG files and
    linked (``prefix`` is prepended to their names)."""
    lines = [f"# {report.title}", "", f"tenant {report.tenant_id}, bot {report.bot_id}"]
    if "summary" in report.sections:
        lines += ["", f"## Summary (change against {_PERIOD_BEFORE[report.kind]})", "",
                  "| metric | value | before | change |", "| --- | ---: | ---: | ---: |"]
        for r in report.summary:
            before = format_value(r.metric, r.previous) if r.previous is not None else ""
            lines.append(f"| {r.metric.replace('_', ' ')} | {r.formatted} | {before} | "
                         f"{change_arrow(r.change)} |")
    if "anomalies" in report.sections:
        lines += ["", "## Anomalies", ""]
        lines += [f"- {a.metric} {a.direction} on {a.day:%Y-%m-%d}: "
                  f"{format_value(a.metric, a.value)}, expected about "
                  f"{format_value(a.metric, a.expected)} (robust z {a.score:+.1f})"
                  for a in report.anomalies] or ["None: every day was within its weekly "
                                                 "rhythm."]
    if "experiments" in report.sections:
        lines += ["", "## Experiments", ""]
        lines += [f"- **{e.name}**: {e.status}, {e.members:,} members, {e.decision}"
                  f"{f' ({e.winner})' if e.winner else ''}. {e.action}"
                  for e in report.experiments] or ["None running."]
    if "recommendations" in report.sections:
        lines += ["", "## Recommendations", ""]
        if report.optimizer_run is None:
            lines.append("No optimizer run yet.")
        else:
            lines += [f"From {report.optimizer_run}.", ""]
            lines += [f"{i}. **[{r['implementation_priority']}] {r['title']}**: "
                      f"{r['impact_estimate']['text']}. {r['evidence']}"
                      for i, r in enumerate(report.recommendations, 1)]
    if "unknown" in report.sections:
        lines += ["", "## Not understood", ""]
        u = report.unknown
        if u is None or not u.clusters:
            lines.append("No unknown or unhandled messages.")
        else:
            lines += [f"{i}. {c.size:,} messages ({c.share:.0%}), {', '.join(c.terms[:3])}: "
                      + "; ".join(f"“{x}”" for x in c.examples)
                      for i, c in enumerate(u.clusters, 1)]
    if chart_dir is not None:
        chart_dir.mkdir(parents=True, exist_ok=True)
        for c in report.charts:
            name = f"{prefix}{c.name}.png"
            (chart_dir / name).write_bytes(c.png)
            lines += ["", f"![{c.title}]({name})"]
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def write(report: Report, out: Path, fmt: str | None = None) -> list[Path]:
    """Write the report to ``out`` as html, md or json (by ``fmt`` or the file's
    extension); returns the files written."""
    fmt = (fmt or out.suffix.lstrip(".") or "html").lower()
    if fmt in ("htm", "html"):
        out.write_text(to_html(report), encoding="utf-8")
        return [out]
    if fmt in ("md", "markdown"):
        out.write_text(to_markdown(report, out.parent, f"{out.stem}-"), encoding="utf-8")
        return [out, *(out.parent / f"{out.stem}-{c.name}.png" for c in report.charts)]
    if fmt == "json":
        out.write_text(to_json(report), encoding="utf-8")
        return [out]
    raise ValueError(f"unknown report format {fmt!r}: use html, md or json")
