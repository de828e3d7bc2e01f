"""The HTML report of a ``vthinker run``: one page per run, bounded in size.

Each sample shows its inputs, every round (text, code, sandbox output and images), the answer, the
ground truth and the verdict; a filter in plain HTML and CSS (no script) shows only the wrong, error,
unscored or correct rows. Images are thumbnails (default), links or embedded in full (``images=``,
``vthinker run --report-images``); embedding stops at ``max_embedded_bytes``.

Design notes: docs/scoring.md.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.runs.files import atomic_write

IMAGE_MODES = ("thumbnails", "links", "embed")
THUMBNAIL_PX = 320
SMALL_IMAGE_BYTES = 24 << 10  # embedded as they are in thumbnail mode
MAX_EMBEDDED_BYTES = 64 << 20
#: Row status -> (filter label, badge text); the order of the filter's buttons.
STATUSES = {"wrong": ("wrong", "wrong"), "error": ("errors", "error"), "unscored": ("not scored", "not scored"),
            "correct": ("correct", "correct")}

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
nav a{margin-right:.6em;font-size:.85em} .filter{margin:.8em 0 .4em} input[name=show]+label{margin-right:1em}
nav{margin-top:.4em}
"""
#: The page style, shared with the other reports of the project (e.g. the data flywheel's).
CSS = _CSS


def _filter_css() -> str:
    """Hide what the checked filter button does not show (the buttons precede nav and samples)."""
    rules = []
    for status in STATUSES:
        rules.append(f"#show-{status}:checked~.samples section.sample:not(.st-{status}),"
                     f"#show-{status}:checked~nav a:not(.st-{status}){{display:none}}")
    return "\n".join(rules)


def data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` for an image file."""
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def thumbnail_uri(path: Path, max_px: int = THUMBNAIL_PX) -> str:
    """A data URI of the image at most ``max_px`` a side, never larger than the file itself: the file when
    it is small already (drawings compress well), else the smaller of a JPEG and, for images of few
    colours, a palette PNG."""
    size = path.stat().st_size
    if size <= SMALL_IMAGE_BYTES:
        return data_uri(path)
    with Image.open(path) as image:
        few_colours = image.convert("RGB").getcolors(256) is not None
        image.thumbnail((max_px, max_px))
        thumb = image.convert("RGB")
    encoded: list[tuple[bytes, str]] = []
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    encoded.append((buf.getvalue(), "image/jpeg"))
    if few_colours:
        buf = io.BytesIO()
        thumb.quantize(colors=64).save(buf, format="PNG", optimize=True)
        encoded.append((buf.getvalue(), "image/png"))
    data, mime = min(encoded, key=lambda item: len(item[0]))
    if len(data) >= size:
        return data_uri(path)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


class _Images:
    """Renders image tags in one of :data:`IMAGE_MODES`, keeping the embedded bytes under a budget."""

    def __init__(self, base_dir: Path, report_dir: Path, mode: str, max_embedded_bytes: int) -> None:
        if mode not in IMAGE_MODES:
            raise ValueError(f"report images must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")
        self.base_dir, self.report_dir, self.mode = base_dir, report_dir, mode
        self.budget = max_embedded_bytes
        self.embedded = 0
        self.linked_over_budget = 0

    def _href(self, path: Path) -> str:
        return _esc(Path(os.path.relpath(path, self.report_dir)).as_posix())

    def tags(self, paths: Sequence[str], label: str) -> str:
        parts = []
        for rel in paths or []:
            path = self.base_dir / rel
            if not path.exists():
                parts.append(f'<span class="muted">[missing image {_esc(rel)}]</span>')
                continue
            href = self._href(path)
            src = None
            if self.mode != "links":
                src = thumbnail_uri(path) if self.mode == "thumbnails" else data_uri(path)
                if self.embedded + len(src) > self.budget:
                    src = None
                    self.linked_over_budget += 1
                else:
                    self.embedded += len(src)
            img = f'<img src="{src or href}" alt="{_esc(label)}" title="{_esc(rel)}" loading="lazy">'
            parts.append(img if self.mode == "embed" and src else f'<a href="{href}">{img}</a>')
        return "".join(parts)


def row_status(row: dict[str, Any]) -> str:
    """``error``, ``correct``, ``wrong`` or ``unscored``: what the badge and the filter go by."""
    if row.get("error"):
        return "error"
    correct = row.get("correct")
    if correct is None:
        return "unscored"
    return "correct" if correct else "wrong"


def _badge(row: dict[str, Any]) -> str:
    status = row_status(row)
    return f'<span class="badge {status}">{STATUSES[status][1]}</span>'


def _round_html(k: int, rnd: dict[str, Any], images: _Images) -> str:
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
            produced = images.tags(rnd["images"], "sandbox output")
            parts.append(f'<div class="muted">images produced</div>{produced}')
    parts.append("</div>")
    return "".join(parts)


def _sample_html(row: dict[str, Any], images: _Images) -> str:
    rid = _esc(row.get("id"))
    parts = [
        f'<section class="sample st-{row_status(row)}" id="s-{rid}"><h3>{rid} '
        f'<span class="muted">{_esc(row.get("task"))}</span>{_badge(row)}</h3>',
        f"<pre>{_esc(row.get('question'))}</pre>",
        images.tags(row.get("input_images") or [], "input"),
    ]
    for k, rnd in enumerate(row.get("rounds") or [], 1):
        parts.append(_round_html(k, rnd, images))
    parts.append(f"<p><b>Answer:</b> {_esc(row.get('prediction'))} &nbsp; <b>Ground truth:</b> {_esc(row.get('gold'))}"
                 f" &nbsp; <span class='muted'>stop: {_esc(row.get('stop_reason'))}</span></p>")
    if row.get("annotation_image"):
        parts.append('<div class="muted">ground-truth drawing</div>'
                     + images.tags([row["annotation_image"]], "ground truth"))
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


def _filter_html(shown: Sequence[dict[str, Any]]) -> str:
    """Radio buttons (all, then each status present) that the CSS of :func:`_filter_css` acts on."""
    counts = {status: sum(row_status(r) == status for r in shown) for status in STATUSES}
    parts = ['<span class="filter">show: </span>',
             f'<input type="radio" name="show" id="show-all" checked><label for="show-all">all ({len(shown)})</label>']
    for status, (label, _) in STATUSES.items():
        if counts[status]:
            parts.append(f'<input type="radio" name="show" id="show-{status}">'
                         f'<label for="show-{status}">{label} ({counts[status]})</label>')
    return "".join(parts)


def render_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any], base_dir: Path,
                  max_samples: int = 2000, *, images: str = "thumbnails", report_dir: Path | None = None,
                  max_embedded_bytes: int = MAX_EMBEDDED_BYTES) -> str:
    """The report as an HTML string. Image paths in rows are relative to ``base_dir``; links are relative
    to ``report_dir`` (the report's folder, default ``base_dir``); ``images``: one of :data:`IMAGE_MODES`."""
    renderer = _Images(base_dir, report_dir or base_dir, images, max_embedded_bytes)
    title = f"vthinker run · {summary.get('benchmark')} · {summary.get('model')}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{_CSS}{_filter_css()}</style></head><body><h1>{_esc(title)}</h1>"]
    if summary.get("oracle"):
        parts.append('<div class="oracle"><b>Oracle run.</b> The "reference" policy replays each sample\'s '
                     "reference code and answer: it checks data, sandbox and scoring, not a model.</div>")
    for note in summary.get("notes") or []:
        parts.append(f'<div class="oracle"><b>Note.</b> {_esc(note)}</div>')
    facts: list[tuple[str, Any]] = []  # nested facts (this_run, scoring) one per line: this_run.rescored ...
    _flatten("", {k: v for k, v in summary.items() if k not in ("metrics", "notes")}, facts)
    parts.append("<table class='metrics'>" + "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in facts) + "</table>")
    parts.append(_metrics_html(summary.get("metrics") or {}))
    shown = list(rows)[:max_samples]
    parts.append(_filter_html(shown))
    parts.append("<nav>" + "".join(f'<a class="st-{row_status(r)}" href="#s-{_esc(r.get("id"))}">'
                                   f'{_esc(r.get("id"))}</a>' for r in shown) + "</nav>")
    samples = "".join(_sample_html(r, renderer) for r in shown)
    if renderer.linked_over_budget:
        parts.append(f"<p class='muted'>{renderer.linked_over_budget} image(s) past the report's "
                     f"{max_embedded_bytes >> 20} MiB of embedded images are links to the files in the run folder."
                     "</p>")
    parts.append(f"<div class='samples'>{samples}</div>")
    if len(rows) > len(shown):
        parts.append(f"<p class='muted'>{len(rows) - len(shown)} more samples are in results.jsonl.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any], path: str | Path,
                 base_dir: str | Path | None = None, max_samples: int = 2000, *, images: str = "thumbnails",
                 max_embedded_bytes: int = MAX_EMBEDDED_BYTES) -> Path:
    """Write the report to ``path``; image paths in rows are relative to ``base_dir`` (default: its folder)."""
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.parent
    html_text = render_report(rows, summary, base, max_samples, images=images, report_dir=path.parent,
                              max_embedded_bytes=max_embedded_bytes)
    atomic_write(path, html_text)
    return path
