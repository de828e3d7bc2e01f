"""A self-contained HTML report of a flywheel run, in the style of ``vthinker run``'s.

The summary, then every accepted and rejected task: knowledge points, level and strategy, the
question, the figure and the figure after the drawing step, the answer, and each attempt's checks,
checker verdict and outcome (so a repair reads as what failed and what changed).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from vthinker_plugins.flywheel.outputs import ordered
from vthinker_plugins.report import CSS, data_uri

REPORT_FILE = "report.html"
_EXTRA_CSS = (".accepted{background:#2e7d32}.repaired{background:#1565c0}.rejected{background:#c62828}"
              ".errored{background:#6a1b9a} td.fail{color:#c62828} td.ok{color:#2e7d32}")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _img(folder: Path, rel: str | None, label: str) -> str:
    if not rel:
        return ""
    path = folder / rel
    if not path.is_file():
        return f'<span class="muted">[missing {_esc(rel)}]</span>'
    return f'<figure style="display:inline-block;margin:4px"><img src="{data_uri(path)}" alt="{_esc(label)}">' \
           f'<figcaption class="muted">{_esc(label)}</figcaption></figure>'


def _badge(record: dict[str, Any]) -> str:
    status = record["status"]
    if status == "accepted" and record.get("repaired"):
        return '<span class="badge repaired">accepted after repair</span>'
    cls = {"accepted": "accepted", "rejected": "rejected"}.get(status, "errored")
    return f'<span class="badge {cls}">{_esc(status)}</span>'


def _attempt_html(attempt: dict[str, Any], folder: Path) -> str:
    verdict = attempt.get("verdict") or {}
    head = (f"<div class='muted'>round {attempt.get('round')} · {_esc(attempt.get('stage'))} · "
            + ("<b>passed</b>" if verdict.get("passed") else
               f"failed: <b>{_esc(verdict.get('reason'))}</b> {_esc(verdict.get('detail'))}") + "</div>")
    parts = [f'<div class="round">{head}']
    rows = "".join(
        f"<tr><td>{_esc(c['name'])}</td><td class='{'ok' if c['ok'] else 'fail'}'>"
        f"{'ok' if c['ok'] else _esc(c['reason'])}</td><td>{_esc(c.get('detail'))}</td></tr>"
        for c in attempt.get("checks") or [])
    if rows:
        parts.append(f"<table class='metrics'>{rows}</table>")
    if attempt.get("checker"):
        parts.append(f"<div class='muted'>checker</div><pre>{_esc(json.dumps(attempt['checker'], indent=1))}</pre>")
    images = attempt.get("images") or {}
    parts.append(_img(folder, images.get("image"), "figure") + _img(folder, images.get("edited_image"),
                                                                     "after the drawing step"))
    problem = attempt.get("problem")
    if problem is not None:
        parts.append(f"<details><summary>problem as written</summary><pre>"
                     f"{_esc(json.dumps(problem, indent=1, ensure_ascii=False))}</pre></details>")
    elif attempt.get("raw") is not None:
        parts.append(f"<details><summary>unreadable reply</summary><pre>{_esc(attempt['raw'])}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def _record_html(record: dict[str, Any], folder: Path) -> str:
    rid = _esc(record["id"])
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts else {}
    problem = record.get("problem") or last.get("problem") or {}
    images = last.get("images") or {}
    parts = [
        f'<section class="sample" id="s-{rid}"><h3>{rid}{_badge(record)}</h3>',
        f"<div class='muted'>level {_esc(record.get('level'))} · {_esc(record.get('strategy'))}"
        + (f" of {_esc(record.get('parent'))}" if record.get("parent") else "") + "</div>",
        "<div class='muted'>" + "<br>".join(_esc(p) for p in record.get("point_paths") or []) + "</div>",
    ]
    if record["status"] != "accepted":
        parts.append(f"<p><b>{_esc(record.get('reason'))}</b>: {_esc(record.get('detail'))}</p>")
    if problem:
        parts.append(f"<pre>{_esc(problem.get('question'))}</pre>")
    parts.append(_img(folder, images.get("image"), "figure") + _img(folder, images.get("edited_image"),
                                                                     "after the drawing step"))
    if problem:
        steps = "\n".join(f"{i}. {s.get('text', '')}" for i, s in enumerate(problem.get("solution") or [], 1))
        code = next((s.get("code") for s in problem.get("solution") or [] if s.get("code")), None)
        parts.append(f"<pre>{_esc(steps)}</pre>")
        if code:
            parts.append(f'<pre class="code">{_esc(code)}</pre>')
        parts.append(f"<p><b>Answer:</b> {_esc(problem.get('answer'))}</p>")
    if record.get("perception"):
        parts.append(f"<div class='muted'>perception row: {'yes' if record['perception']['ok'] else 'no'} "
                     f"({_esc(record['perception']['detail'])})</div>")
    parts.append(f"<details><summary>{len(attempts)} attempt(s)</summary>"
                 + "".join(_attempt_html(a, folder) for a in attempts) + "</details></section>")
    return "".join(parts)


def write_report(folder: str | Path, records: dict[str, dict[str, Any]], summary: dict[str, Any],
                 max_samples: int = 1000) -> Path:
    """Write ``report.html`` into the run folder (images embedded) and return its path."""
    folder = Path(folder)
    rows = ordered(records)
    shown = rows[:max_samples]
    title = "vthinker flywheel"
    facts = {k: v for k, v in summary.items() if not isinstance(v, dict) and k != "shards"}
    tables = {k: v for k, v in summary.items() if isinstance(v, dict) and k != "identity"}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
             f"<style>{CSS}{_EXTRA_CSS}</style></head><body><h1>{title}</h1>"]
    if (summary.get("identity") or {}).get("generator_model") == "scripted":
        parts.append('<div class="oracle"><b>Scripted run.</b> The generator and checker were the built-in scripted '
                     "server (templated problems, no model): the run checks the pipeline, not a model.</div>")
    parts.append("<table class='metrics'>" + "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>"
                                                      for k, v in facts.items()) + "</table>")
    for name, value in tables.items():
        parts.append(f"<details><summary>{_esc(name)}</summary><pre>{_esc(json.dumps(value, indent=1))}</pre>"
                     "</details>")
    parts.append("<nav>" + "".join(f'<a href="#s-{_esc(r["id"])}">{_esc(r["id"])}</a>' for r in shown) + "</nav>")
    parts += [_record_html(r, folder) for r in shown]
    if len(rows) > len(shown):
        parts.append(f"<p class='muted'>{len(rows) - len(shown)} more tasks are in records.jsonl.</p>")
    parts.append("</body></html>")
    path = folder / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path
