"""The run folder of ``vthinker run``: ``results.jsonl`` (one row per sample, appended as each finishes),
``run.json`` (the run's identity and scoring settings), ``images/<safe id>/`` (the trajectory layout of
:mod:`.trajectory`), ``summary.json`` and ``report.html``; the resume plan and re-scoring of stored rows."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vthinker_plugins.loop import Trajectory
from vthinker_plugins.runs.files import (
    append_jsonl,
    atomic_write,
    changed_settings,
    read_jsonl,
    safe_name,
    write_jsonl,
)
from vthinker_plugins.runs.trajectory import json_safe, load_images, shown_images, upgrade_record, write_trajectory

RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, IMAGES_DIR, RUN_FILE = (
    "results.jsonl", "summary.json", "report.html", "images", "run.json")
SCORING_FAILED = "scoring failed:"
#: run.json keys saying how rows are scored; every other key says what generated them.
SCORING_KEYS = ("eval", "judge_model", "judge_url", "judge_prompts", "pixel_metric")
_UNKNOWN = "unknown"  # ``scored_with`` of rows whose scoring settings were never recorded


def scoring_fingerprint(settings: dict[str, Any] | None) -> str:
    """A short hash of the scoring settings (``unknown`` for ``None``), stored in each row as ``scored_with``."""
    if settings is None:
        return _UNKNOWN
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def describe_scoring(settings: dict[str, Any]) -> str:
    if not settings.get("eval"):
        return "scoring off (verdicts cleared, --clear-verdicts)"
    if not settings.get("judge_model"):
        return "judge-free scoring"
    prompts = settings.get("judge_prompts") or {}
    extra = f", prompt files for {', '.join(sorted(prompts))}" if prompts else ""
    return f"judge {settings['judge_model']} at {settings['judge_url']}{extra}"


def scoring_failed(row: dict[str, Any]) -> bool:
    return str(row.get("error") or "").startswith(SCORING_FAILED)


def unscored_by_failure(row: dict[str, Any]) -> bool:
    """The row's scoring raised or its judge call failed: it is re-judged on re-run."""
    return scoring_failed(row) or (row.get("verdict") or {}).get("judge_status") == "failed"


def _check_row(row: Any) -> str | None:
    return None if isinstance(row, dict) and "id" in row else "row without an 'id'"


@dataclass
class ResumePlan:
    """What a re-run does with the rows of the results file (see :meth:`ResultsStore.plan_resume`)."""

    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # finished rows by id, current scoring
    rescore: list[dict[str, Any]] = field(default_factory=list)  # rows to score again, no generation
    rejudge: list[dict[str, Any]] = field(default_factory=list)  # rows whose judge call (or scoring) failed
    regenerate: set[str] = field(default_factory=set)  # ids of earlier rows that are generated again
    incomplete: set[str] = field(default_factory=set)  # ... of them: rows lacking their stored trajectory
    other: list[dict[str, Any]] = field(default_factory=list)  # rows of samples outside this run (--limit)
    keep: list[dict[str, Any]] = field(default_factory=list)  # every row kept in the file, in file order
    rewrite: bool = False  # the file must be rewritten even with nothing to score


class ResultsStore:
    """One ``vthinker run`` output folder (see the module doc)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.results = self.folder / RESULTS_FILE
        self.run_file = self.folder / RUN_FILE

    # ------------------------------------------------------------------ files

    def clear(self) -> None:
        """``--overwrite``: remove what an earlier run wrote (other files, e.g. the data cache, stay)."""
        for name in (RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, IMAGES_DIR, RUN_FILE):
            target = self.folder / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def rows(self) -> list[dict[str, Any]]:
        """Rows of the results file (older layouts upgraded); a line cut short by a kill is skipped."""
        return [upgrade_record(r) for r in read_jsonl(self.results, _check_row).rows]

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Replace the results file with ``rows`` atomically: a kill leaves the old file or the new one."""
        write_jsonl(self.results, rows)

    def append(self, row: dict[str, Any]) -> None:
        append_jsonl(self.results, row)

    def write_json(self, name: str, value: dict[str, Any]) -> None:
        atomic_write(self.folder / name, json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    # ------------------------------------------------------------------ identity

    def _earlier(self) -> dict[str, Any] | None:
        return json.loads(self.run_file.read_text(encoding="utf-8")) if self.run_file.exists() else None

    def check_identity(self, identity: dict[str, Any]) -> str | None:
        """Refuse to resume into a folder that holds another run's rows (a different model, benchmark or
        generation setting would silently mix results). Returns the scoring fingerprint ``run.json``
        records (``unknown`` when it lacks a scoring key, ``None`` when there is nothing to resume)."""
        earlier = self._earlier()
        if earlier is None or not self.results.exists():
            return None
        details = changed_settings(earlier, identity, [k for k in identity if k not in SCORING_KEYS])
        if details:
            raise SystemExit(f"{self.folder} holds results of a different run ({details}); "
                             "use another --output or --overwrite")
        if any(k not in earlier for k in SCORING_KEYS):
            return _UNKNOWN
        return scoring_fingerprint({k: earlier[k] for k in SCORING_KEYS})

    def recorded_scoring(self) -> dict[str, Any] | None:
        """The scoring settings ``run.json`` records (``None`` without a run.json holding them all)."""
        earlier = self._earlier()
        if earlier is None or not all(k in earlier for k in SCORING_KEYS):
            return None
        return {k: earlier[k] for k in SCORING_KEYS}

    def resume(self, samples: list[Any], identity: dict[str, Any], scoring: dict[str, Any], judge: Any,
               scoring_on: bool, clear_verdicts: bool = False) -> tuple[ResumePlan, dict[str, dict[str, Any]], bool]:
        """Check the identity, re-score (or re-judge) stored rows as the resume plan says and record
        ``run.json``; returns (plan, finished rows by id, whether run.json was created now). The results file
        is rewritten before run.json records the new settings, so a kill in between leaves rows the next run
        re-scores again. Without ``--eval`` stored verdicts are kept unless ``clear_verdicts``: run.json then
        keeps the settings they were scored with."""
        fingerprint = scoring_fingerprint(scoring)
        recorded = self.check_identity(identity)
        keep_verdicts = not scoring_on and not clear_verdicts
        run_scoring = (self.recorded_scoring() or scoring) if keep_verdicts else scoring
        by_id = {str(s.id): s for s in samples}
        plan = self.plan_resume(set(by_id), fingerprint, recorded, keep_scoring=keep_verdicts)
        redo = plan.rescore + plan.rejudge
        rescored = self.rescore(redo, by_id, scoring_on, judge, fingerprint) if redo else []
        if rescored or plan.rewrite:
            fresh = {str(r["id"]): r for r in rescored}
            self.write_rows([fresh.get(str(r["id"]), r) for r in plan.keep])
        created_run_json = not self.run_file.exists()
        self.write_json(RUN_FILE, {**identity, **run_scoring})
        if plan.rescore or plan.rejudge or plan.regenerate:
            note = f" ({len(plan.incomplete)} lacked their stored text or images)" if plan.incomplete else ""
            print(f"resume: {len(plan.rescore)} row(s) re-scored with {describe_scoring(scoring)}, "
                  f"{len(plan.rejudge)} re-judged, {len(plan.regenerate)} regenerated{note}")
        if n_failed := sum(map(unscored_by_failure, rescored)):
            print(f"resume: scoring still failed for {n_failed} re-scored row(s); re-run to retry them")
        if n_kept := sum(r.get("verdict") is not None for r in plan.done.values()) if keep_verdicts else 0:
            print(f"resume: {n_kept} row(s) keep the verdicts of an earlier scoring (no --eval now; "
                  "--clear-verdicts clears them); metrics need --eval")
        return plan, {**plan.done, **{str(r["id"]): r for r in rescored}}, created_run_json

    # ------------------------------------------------------------------ rows

    def trajectory_row(self, traj: Trajectory, verdict: dict[str, Any] | None, scored_with: str) -> dict[str, Any]:
        """Write the images of a finished trajectory under ``images/<safe id>/`` and return its row."""
        sample = traj.sample
        record = write_trajectory(traj, self.folder / IMAGES_DIR / safe_name(str(sample.id)), base=self.folder)
        meta = {k: v for k, v in sample.meta.items() if k != "annotation"}
        row: dict[str, Any] = {"id": sample.id, "task": sample.task, "question": sample.question,
                               "options": sample.options, "gold": sample.answer, "prediction": record.pop("answer")}
        row.update(record)
        row.update(meta=json_safe(meta), verdict=json_safe(verdict),
                   correct=None if verdict is None else verdict.get("correct"), scored_with=scored_with)
        return row

    def plan_resume(self, sample_ids: set[str], current: str, recorded: str | None,
                    keep_scoring: bool = False) -> ResumePlan:
        """Sort the rows (latest row per id wins): errored trajectories are generated again; finished rows
        scored with other settings than ``current`` (a row without ``scored_with`` was scored as ``run.json``
        records, ``recorded``) are re-scored, and rows whose judge failed re-judged, from their stored text
        and images -- or generated again when those are missing. ``keep_scoring`` (a run without ``--eval``):
        finished rows stay as they are, verdicts and all."""
        plan = ResumePlan()
        found = read_jsonl(self.results, _check_row)
        latest = {sid: upgrade_record(row) for sid, row in found.latest().items()}
        plan.rewrite = found.needs_repair
        for sid, row in latest.items():
            if "scored_with" not in row:
                row = dict(row, scored_with=recorded or _UNKNOWN)
                plan.rewrite = True
            if sid not in sample_ids:
                plan.other.append(row)
                plan.keep.append(row)
                continue
            if row.get("error") and not scoring_failed(row):
                plan.regenerate.add(sid)
                plan.rewrite = True
                continue
            if keep_scoring or (row["scored_with"] == current and not unscored_by_failure(row)):
                plan.done[sid] = row
                plan.keep.append(row)
                continue
            if not isinstance(row.get("text"), str) or shown_images(row, self.folder) is None:
                plan.regenerate.add(sid)
                plan.incomplete.add(sid)
                plan.rewrite = True
                continue
            (plan.rescore if row["scored_with"] != current else plan.rejudge).append(row)
            plan.keep.append(row)
        return plan

    def rescore(self, rows: list[dict[str, Any]], samples: dict[str, Any], scoring_on: bool, judge: Any,
                fingerprint: str) -> list[dict[str, Any]]:
        """Score ``rows`` again from their stored text and shown images through
        :func:`vthinker_plugins.scoring.score_samples`; no model is called. A row whose scoring raises becomes
        a ``scoring failed`` row (retried on the next re-run). ``scoring_on=False``: verdicts cleared."""
        if not scoring_on:
            return [dict(r, verdict=None, correct=None, error=None if scoring_failed(r) else r.get("error"),
                         scored_with=fingerprint) for r in rows]
        from vthinker_plugins.scoring import score_samples

        def images_of(row: dict[str, Any]) -> Any:
            def load() -> list[Any]:
                paths = shown_images(row, self.folder)
                if paths is None:
                    raise FileNotFoundError("the row's stored sandbox images are missing")
                return load_images(paths)
            return load

        items = [(samples[str(r["id"])], r["text"], images_of(r)) for r in rows]
        verdicts = score_samples(items, judge, progress=len(rows) >= 8, return_exceptions=True)
        fresh = []
        for row, verdict in zip(rows, verdicts, strict=True):
            new = dict(row, error=None, scored_with=fingerprint)
            if isinstance(verdict, BaseException):
                if not isinstance(verdict, Exception):
                    raise verdict
                new["error"] = f"{SCORING_FAILED} {type(verdict).__name__}: {verdict}"
                verdict = None
            new["verdict"] = json_safe(verdict)
            new["correct"] = None if verdict is None else verdict.get("correct")
            fresh.append(new)
        return fresh


# --------------------------------------------------------------------------- scoring settings, summary

def scoring_settings(judge: Any, scoring_on: bool) -> dict[str, Any]:
    """How rows are scored (the ``SCORING_KEYS`` of run.json) with the judge settings ``judge`` (a
    :class:`~vthinker_plugins.factory.JudgeSettings` or ``None``): ``--eval``, the judge endpoint, a hash of
    each judge prompt file and the pixel-metric settings. Rows scored otherwise are re-scored on resume."""
    if not scoring_on:
        return dict.fromkeys(SCORING_KEYS) | {"eval": False}
    from vthinker_plugins.scoring import PixelMetricConfig

    return {"eval": True, "judge_model": judge and judge.model, "judge_url": judge and judge.base_url,
            "judge_prompts": None if judge is None else judge.prompt_hashes(),
            "pixel_metric": asdict(PixelMetricConfig())}



def build_summary(benchmark: str, data: str | None, model: str, rows: list[dict[str, Any]], n_samples: int,
                  scoring_on: bool, elapsed_s: float, this_run: dict[str, int] | None = None,
                  scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run facts plus the scoring module's metrics over every scored row. ``this_run``: what this invocation
    did (samples ``generated``, rows ``rescored``/``rejudged`` from their stored trajectories, earlier rows
    ``regenerated``); ``scoring``: the scoring settings of every row; ``notes``: why a metric is null."""
    metrics = None
    if scoring_on:
        from vthinker_plugins.scoring import summarize

        metrics = summarize([r["verdict"] for r in rows if r.get("verdict")])
    return {
        "benchmark": benchmark,
        "data": data,
        "model": model,
        "oracle": model == "reference",
        "n_samples": n_samples,
        "n_done": len(rows),
        "n_errors": sum(1 for r in rows if r.get("error")),
        "n_tool_calls": sum(r.get("n_tool_calls", 0) for r in rows),
        "n_tool_errors": sum(r.get("n_tool_errors", 0) for r in rows),
        "elapsed_s": round(elapsed_s, 2),
        "this_run": this_run,
        "scoring": scoring,
        "metrics": metrics,
        "notes": null_metric_notes(rows, metrics, scoring_on),
    }


def null_metric_notes(rows: list[dict[str, Any]], metrics: dict[str, Any] | None, scoring_on: bool) -> list[str]:
    """Why a metric the summary holds is null: scoring off, no row scored (generation errors), or the judge
    failed on every row it was asked about (with the judge's most frequent error)."""
    if not scoring_on:
        return ["metrics are null: scoring is off (run the same command with --eval to score the stored rows)"]
    notes = []
    errored = sum(1 for r in rows if r.get("error"))
    if not metrics:
        if rows:
            notes.append(f"metrics are empty: no row was scored ({errored} of {len(rows)} ended in an error; "
                         "re-run the same command to retry them)")
        return notes
    from vthinker_plugins.scoring import null_accuracy_reason

    for task, m in metrics.items():
        if not isinstance(m, dict):
            continue
        reason = null_accuracy_reason(m, [r["verdict"] for r in rows if r.get("task") == task and r.get("verdict")])
        if reason is not None:
            again = "; re-run the same command to judge them again" if m.get("judge_failed") else ""
            notes.append(f"{task}: {reason}{again}")
    return notes
