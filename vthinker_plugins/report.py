"""A self-contained HTML report of a ``vthinker run``: one page, images embedded as data URIs.

Each sample shows the question and input image(s), every round's text, its code,
the sandbox status/output and the images the code produced, the final answer,
the ground truth (and the ground-truth drawing for VTBench perception and
instruction items) and the verdict. Open it in any browser; it needs no files
beside it.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
h1{font-size:1.4em} .oracle{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em;margin:1em 0}
table.metrics{border-collapse:collapse;margin:.6em 0}
table.metrics td,table.metrics th{border:1px solid #ccc;padding:2px 8px;font-size:.85em}
table.by-task th{background:#f0f0f0;font-weight:600} .scroll{overflow-x:auto}
section.sample{border:1px solid #ccc;border-radius:6px;margin:1.2em 0;padding:.8em 1em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:.85em;margin-left:.5em}
.correct{background:#2e7d32}.wrong{background:#c62828}.unscored{background:#757575}.error{background:#6a1b9a}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.5em;border-radius:4px;font-size:.85em;overflow-x:auto}
pre.code{background:#eef3ff} img{max-width:360px;max-height:360px;border:1px solid #ddd;margin:4px}
.round{border-left:3px solid #90a4ae;padding-left:.8em;margin:.6em 0} .muted{color:#666;font-size:.85em}
nav a{margin-right:.6em;font-size:.85em}
"""
#: The page style, shared with the other reports of the project (e.g. the data flywheel's).
CSS = _CSS


def data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` for an image file."""
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _images(paths: Sequence[str], base_dir: Path, label: str) -> str:
    parts = []
    for rel in paths or []:
        path = base_dir / rel
        if path.exists():
            parts.append(f'<img src="{data_uri(path)}" alt="{_esc(label)}" title="{_esc(rel)}">')
        else:
            parts.append(f'<span class="muted">[missing image {_esc(rel)}]</span>')
    return "".join(parts)


def _badge(row: dict[str, Any]) -> str:
    if row.get("error"):
        return '<span class="badge error">error</span>'
    correct = row.get("correct")
    if correct is None:
        return '<span class="badge unscored">not scored</span>'
    return '<span class="badge correct">correct</span>' if correct else '<span class="badge wrong">wrong</span>'


def _round_html(k: int, rnd: dict[str, Any], base_dir: Path) -> str:
    text = rnd.get("text") or ""
    code = rnd.get("code")
    parts = [f'<div class="round"><div class="muted">round {k} · finish: {_esc(rnd.get("finish_reason"))}'
             f' · {_esc(rnd.get("gen_s"))} s generation</div>', f"<pre>{_esc(text)}</pre>"]
    if code:
        parts.append(f'<div class="muted">code run in the sandbox · status: <b>{_esc(rnd.get("status"))}</b>'
                     f' · {_esc(rnd.get("tool_s"))} s</div><pre class="code">{_esc(code)}</pre>')
        if rnd.get("error"):
            parts.append(f'<pre class="muted">{_esc(rnd["error"])}</pre>')
        elif rnd.get("stdout"):
            parts.append(f'<div class="muted">stdout</div><pre>{_esc(rnd["stdout"][:2000])}</pre>')
        if rnd.get("images"):
            produced = _images(rnd["images"], base_dir, "sandbox output")
            parts.append(f'<div class="muted">images produced</div>{produced}')
    parts.append("</div>")
    return "".join(parts)


def _sample_html(row: dict[str, Any], base_dir: Path) -> str:
    rid = _esc(row.get("id"))
    parts = [
        f'<section class="sample" id="s-{rid}"><h3>{rid} <span class="muted">{_esc(row.get("task"))}</span>'
        f"{_badge(row)}</h3>",
        f"<pre>{_esc(row.get('question'))}</pre>",
        _images(row.get("input_images") or [], base_dir, "input"),
    ]
    for k, rnd in enumerate(row.get("rounds") or [], 1):
        parts.append(_round_html(k, rnd, base_dir))
    parts.append(f"<p><b>Answer:</b> {_esc(row.get('prediction'))} &nbsp; <b>Ground truth:</b> {_esc(row.get('gold'))}"
                 f" &nbsp; <span class='muted'>stop: {_esc(row.get('stop_reason'))}</span></p>")
    if row.get("annotation_image"):
        parts.append('<div class="muted">ground-truth drawing</div>'
                     + _images([row["annotation_image"]], base_dir, "ground truth"))
    if row.get("error"):
        parts.append(f'<pre class="muted">{_esc(row["error"])}</pre>')
    if row.get("verdict"):
        verdict = json.dumps(row["verdict"], ensure_ascii=False, indent=1)
        parts.append(f'<details><summary>verdict</summary><pre>{_esc(verdict)}</pre></details>')
    parts.append("</section>")
    return "".join(parts)


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, value))


def _metrics_html(metrics: dict[str, Any]) -> str:
    """One row per task, one column per scalar metric; nested tables (e.g. MathVision's official
    per-level/per-subject layout) go into a collapsible list below."""
    tasks = {t: m for t, m in metrics.items() if isinstance(m, dict)}
    if not tasks:
        return ""
    columns: list[str] = []
    for m in tasks.values():
        columns += [k for k, v in m.items() if not isinstance(v, dict) and k not in columns]
    head = "<tr><th>task</th>" + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr><td>{_esc(t)}</td>" + "".join(f"<td>{_esc(m.get(c, ''))}</td>" for c in columns) + "</tr>"
        for t, m in tasks.items()
    )
    nested: list[tuple[str, Any]] = []
    for t, m in tasks.items():
        _flatten(t, {k: v for k, v in m.items() if isinstance(v, dict)}, nested)
    details = ""
    if nested:
        details = "<details><summary>detailed metrics</summary><table class='metrics'>" + "".join(
            f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in nested) + "</table></details>"
    return f"<div class='scroll'><table class='metrics by-task'>{head}{body}</table></div>{details}"


def render_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any], base_dir: Path,
                  max_samples: int = 2000) -> str:
    """The report as an HTML string (images read from ``base_dir`` and embedded)."""
    title = f"vthinker run · {summary.get('benchmark')} · {summary.get('model')}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>"]
    if summary.get("oracle"):
        parts.append('<div class="oracle"><b>Oracle run.</b> The "reference" policy replays each sample\'s '
                     "reference code and answer: it checks data, sandbox and scoring, not a model.</div>")
    facts: list[tuple[str, Any]] = []  # nested facts (this_run, scoring) one per line: this_run.rescored ...
    _flatten("", {k: v for k, v in summary.items() if k != "metrics"}, facts)
    parts.append("<table class='metrics'>" + "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in facts) + "</table>")
    parts.append(_metrics_html(summary.get("metrics") or {}))
    shown = list(rows)[:max_samples]
    parts.append("<nav>" + "".join(f'<a href="#s-{_esc(r.get("id"))}">{_esc(r.get("id"))}</a>' for r in shown)
                 + "</nav>")
    parts.extend(_sample_html(r, base_dir) for r in shown)
    if len(rows) > len(shown):
        parts.append(f"<p class='muted'>{len(rows) - len(shown)} more samples are in results.jsonl.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any], path: str | Path,
                 base_dir: str | Path | None = None, max_samples: int = 2000) -> Path:
    """Write the self-contained report to ``path``; image paths in rows are relative to ``base_dir``."""
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.parent
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_report(rows, summary, base, max_samples), encoding="utf-8")
    tmp.replace(path)
    return path
