"""``vthinker run``: a model through the code loop on a benchmark, scored, with a report.

    vthinker run                                   # built-in default, no GPU/hub needed
    vthinker run --benchmark vtbench --model /models/V-Thinker-7B --eval
    vthinker run --benchmark mathvision-testmini --data ../shared/data/mathvision \\
        --model openai:gpt-4o --eval --limit 50
    vthinker run --benchmark wemath --model /models/V-Thinker-7B --eval      # also: visulogic

With no arguments it generates the project's VTBench-format sample (cached in
``<output>/data``) and replays its reference code with the ``reference`` oracle
through the real sandbox and scoring — a check of data, sandbox and scoring.

Outputs in ``--output`` (default ``runs/<benchmark>__<model>``):
``results.jsonl`` (one row per sample, appended as each finishes), ``images/``
(inputs and every sandbox image, PNG, referenced from the rows), ``summary.json``
(metrics) and ``report.html`` (self-contained). A re-run resumes: finished rows
are kept, rows whose trajectory ended in an error are generated again, a line cut by
a kill is dropped; ``--overwrite`` starts over.

``run.json`` records what generated the rows (benchmark, data, split, model and its
options, prompts, limits, sampling) and how they were scored (``--eval``, the judge
model/URL, the judge prompt files of ``VTHINKER_JUDGE_PROMPT_*``, the pixel-metric
settings). Resuming with other generation settings is refused. Other scoring settings
(also ``--eval`` added later, or a ``run.json`` older than the scoring keys) re-score
every finished row from what it stores — the response text and the sandbox images saved
under ``images/`` — with no model call, and ``results.jsonl`` is rewritten atomically;
rows whose judge call (or scoring) failed are re-judged the same way; a re-run without
``--eval`` clears the verdicts (judge verdicts stay in ``judge_cache.jsonl``). Each row names
the scoring settings it was scored with (``scored_with``, a hash of them).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins import trajectory_files
from vthinker_plugins.loop import LoopConfig, Trajectory

RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, IMAGES_DIR = "results.jsonl", "summary.json", "report.html", "images"
BUILTIN = "builtin"
_SCORING_FAILED = "scoring failed:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what to run")
    g.add_argument("--benchmark", default=None,
                   help="vtbench, vtbench-perception, vtbench-instruction, vtbench-reasoning, mathvision, "
                        "mathvision-testmini, wemath, visulogic, or a local data path; default: the built-in "
                        "VTBench-format sample")
    g.add_argument("--model", default=None,
                   help="checkpoint path or hub id (transformers), openai:NAME, vllm:PATH, or reference "
                        "(an oracle replaying reference code); default with the built-in sample: reference")
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable: device=cuda, dtype=bfloat16, max_pixels=4194304, "
                        "max_batch_size=8, base_url=..., api_key=..., mode=turns, script=PATH.jsonl")
    g.add_argument("--data", default=None, help="local copy of a named benchmark (file, folder, save_to_disk)")
    g.add_argument("--split", default=None,
                   help="dataset split (default: train for VTBench and VisuLogic, test/testmini for MathVision, "
                        "testmini for We-Math)")
    g.add_argument("--limit", type=int, default=None, help="first N samples only")
    g.add_argument("--sample-rows", type=int, default=6, help="rows of the built-in sample (x3 tasks)")
    g = parser.add_argument_group("loop")
    g.add_argument("--max-rounds", type=int, default=None,
                   help="code executions per sample; overrides the per-task limits (VTBench perception and "
                        "instruction: 1, others: 5)")
    g.add_argument("--max-new-tokens", type=int, default=16384, help="per generation step")
    g.add_argument("--max-tool-images", type=int, default=10, help="sandbox images shown to the model per sample")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--persistent-state", action="store_true", help="keep Python state across a sample's cells")
    g.add_argument("--concurrency", type=int, default=64, help="samples in flight at once")
    g.add_argument("--system-prompt-file", default=None,
                   help="system prompt text (e.g. the official V-Thinker data/prompt.txt)")
    g.add_argument("--user-prompt-file", default=None, help="user template with {images} and {question} fields")
    g = parser.add_argument_group("scoring and output")
    g.add_argument("--eval", action="store_true",
                   help="score every row and write metrics (on for the default); added on a re-run, the stored "
                        "rows are scored without generating them again")
    g.add_argument("--judge-url", default=None,
                   help="OpenAI-compatible base URL of an LLM judge (default: VTHINKER_JUDGE_URL)")
    g.add_argument("--judge-model", default=None,
                   help="judge model name, enables judge-based VTBench scoring (default: VTHINKER_JUDGE_MODEL)")
    g.add_argument("--judge-api-key", default=None, help="judge API key (default: OPENAI_API_KEY)")
    g.add_argument("--output", default=None, help="output folder (default: runs/<benchmark>__<model>)")
    g.add_argument("--overwrite", action="store_true", help="discard earlier results in the output folder")
    g.add_argument("--no-report", action="store_true", help="skip the HTML report")


# --------------------------------------------------------------------------- results file

def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results file; a line cut short by a kill (the last one) is skipped."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):  # the write that was interrupted
                continue
            raise ValueError(f"{path}:{lineno}: not a JSON row; fix or delete the file (or use --overwrite)") from None
        if not isinstance(row, dict) or "id" not in row:
            raise ValueError(f"{path}:{lineno}: row without an 'id'")
        rows.append(row)
    return rows


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the results file with ``rows`` atomically: a kill leaves the old file or the new one."""
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row and make it durable before the next sample is reported."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


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
        return "scoring off (verdicts cleared)"
    if not settings.get("judge_model"):
        return "judge-free scoring"
    prompts = settings.get("judge_prompts") or {}
    extra = f", prompt files for {', '.join(sorted(prompts))}" if prompts else ""
    return f"judge {settings['judge_model']} at {settings['judge_url']}{extra}"


def check_run_identity(out: Path, identity: dict[str, Any]) -> str | None:
    """Refuse to resume into a folder that holds another run's rows (a different model, benchmark
    or generation setting would silently mix results). Returns the scoring fingerprint recorded by
    ``run.json`` (``unknown`` when it lacks a scoring key, ``None`` when there is nothing to resume);
    the caller writes the new ``run.json`` once the rows match the current scoring settings."""
    path = out / "run.json"
    if not (path.exists() and (out / RESULTS_FILE).exists()):
        return None
    earlier = json.loads(path.read_text(encoding="utf-8"))
    changed = sorted(k for k in identity if k not in SCORING_KEYS and earlier.get(k) != identity[k])
    if changed:
        details = ", ".join(f"{k}: {earlier.get(k)!r} -> {identity[k]!r}" for k in changed)
        raise SystemExit(f"{out} holds results of a different run ({details}); "
                         "use another --output or --overwrite")
    if any(k not in earlier for k in SCORING_KEYS):
        return _UNKNOWN
    return scoring_fingerprint({k: earlier[k] for k in SCORING_KEYS})


def write_run_json(out: Path, identity: dict[str, Any]) -> None:
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / "run.json")


def _scoring_failed(row: dict[str, Any]) -> bool:
    return str(row.get("error") or "").startswith(_SCORING_FAILED)


def _unscored_by_failure(row: dict[str, Any]) -> bool:
    """The row's scoring raised or its judge call failed: it is re-judged on re-run."""
    return _scoring_failed(row) or (row.get("verdict") or {}).get("judge_status") == "failed"


def stored_trajectory(row: dict[str, Any], out: Path) -> tuple[str, list[Path]] | None:
    """(response text, paths of the sandbox images the model was shown, in order) of a stored row, or
    ``None`` when the row lacks one of them (the text, a round's image list, an image file)."""
    text, rounds = row.get("text"), row.get("rounds")
    if not isinstance(text, str) or not isinstance(rounds, list):
        return None
    paths: list[Path] = []
    for rnd in rounds:
        images = rnd.get("images") if isinstance(rnd, dict) else None
        if not isinstance(images, list) or len(images) != rnd.get("images_shown", len(images)):
            return None
        paths.extend(out / p for p in images)
    if not all(p.is_file() for p in paths):
        return None
    return text, paths


@dataclass
class ResumePlan:
    """What a re-run does with the rows of the results file (see :func:`plan_resume`)."""

    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # finished rows by id, current scoring
    rescore: list[dict[str, Any]] = field(default_factory=list)  # rows to score again, no generation
    rejudge: list[dict[str, Any]] = field(default_factory=list)  # rows whose judge call (or scoring) failed
    regenerate: set[str] = field(default_factory=set)  # ids of earlier rows that are generated again
    incomplete: set[str] = field(default_factory=set)  # ... of them: rows lacking their stored trajectory
    other: list[dict[str, Any]] = field(default_factory=list)  # rows of samples outside this run (--limit)
    keep: list[dict[str, Any]] = field(default_factory=list)  # every row kept in the file, in file order
    rewrite: bool = False  # the file must be rewritten even with nothing to score


def plan_resume(path: Path, out: Path, sample_ids: set[str], current: str, recorded: str | None) -> ResumePlan:
    """Sort the rows of ``path`` (latest row per id wins): errored trajectories are generated again;
    finished rows scored with other settings than ``current`` (a row without ``scored_with`` was scored
    as ``run.json`` records, ``recorded``) are re-scored, and rows whose judge failed re-judged, from their
    stored text and images -- or generated again when those are missing."""
    plan = ResumePlan()
    rows = read_results(path)
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.pop(str(row["id"]), None)  # keep file order = order of the latest rows
        latest[str(row["id"])] = row
    plan.rewrite = len(latest) != len(rows) or (path.exists() and not path.read_text(encoding="utf-8").endswith("\n"))
    for sid, row in latest.items():
        if "scored_with" not in row:
            row = dict(row, scored_with=recorded or _UNKNOWN)
            plan.rewrite = True
        if sid not in sample_ids:
            plan.other.append(row)
            plan.keep.append(row)
            continue
        if row.get("error") and not _scoring_failed(row):
            plan.regenerate.add(sid)
            plan.rewrite = True
            continue
        if row["scored_with"] == current and not _unscored_by_failure(row):
            plan.done[sid] = row
            plan.keep.append(row)
            continue
        if stored_trajectory(row, out) is None:
            plan.regenerate.add(sid)
            plan.incomplete.add(sid)
            plan.rewrite = True
            continue
        (plan.rescore if row["scored_with"] != current else plan.rejudge).append(row)
        plan.keep.append(row)
    return plan


def rescore_rows(rows: list[dict[str, Any]], samples: dict[str, Any], out: Path, scorer: Any, judge: Any,
                 fingerprint: str) -> list[dict[str, Any]]:
    """Score ``rows`` again from their stored trajectories with the scoring module's :func:`ascore_sample`
    (the scorer of a live run), judge calls running concurrently; no model is called. A row whose scoring
    raises becomes a ``scoring failed`` row (retried on the next re-run). ``scorer=None``: verdicts cleared."""
    if scorer is None:
        return [dict(r, verdict=None, correct=None, error=None if _scoring_failed(r) else r.get("error"),
                     scored_with=fingerprint) for r in rows]
    from tqdm.auto import tqdm

    from vthinker_plugins.scoring.score import run_sync

    async def run_all() -> list[dict[str, Any]]:
        limit = asyncio.Semaphore(max(8, 2 * getattr(judge, "concurrency", 4)))  # bounds images in memory
        bar = tqdm(total=len(rows), desc="re-scoring", unit="row", dynamic_ncols=True, disable=len(rows) < 8)

        async def one(row: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                stored = stored_trajectory(row, out)
                new = dict(row, error=None, scored_with=fingerprint)
                try:
                    if stored is None:
                        raise FileNotFoundError("the row's stored sandbox images are missing")
                    text, paths = stored
                    images = trajectory_files.load_images([str(p) for p in paths])
                    verdict = await scorer(samples[str(row["id"])], text, images, judge=judge)
                except Exception as exc:  # noqa: BLE001 - the row is kept, its scoring retried on re-run
                    verdict = None
                    new["error"] = f"{_SCORING_FAILED} {type(exc).__name__}: {exc}"
                new["verdict"] = _json_safe(verdict)
                new["correct"] = None if verdict is None else verdict.get("correct")
                bar.update(1)
                return new

        try:
            return list(await asyncio.gather(*(one(r) for r in rows)))
        finally:
            bar.close()
            if judge is not None:
                await judge.aclose()

    return run_sync(run_all())


# --------------------------------------------------------------------------- rows

def _save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def image_folder_name(sample_id: Any) -> str:
    """A sample's image folder: its id made file-system safe plus a short hash of the raw id, so no two
    ids share (and overwrite) a folder. Runs written before the hash was added resume as they are: their
    finished rows keep pointing at their old folders, and new rows never write into those."""
    return trajectory_files.safe_name(str(sample_id))


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items() if not isinstance(v, Image.Image)}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value if not isinstance(v, Image.Image)]
    return str(value)


def trajectory_row(traj: Trajectory, out_dir: Path, verdict: dict[str, Any] | None) -> dict[str, Any]:
    """The JSONL row of one finished trajectory; its images are written under ``images/<folder>/``,
    the folder named by :func:`image_folder_name` (ids that differ only in punctuation, e.g. ``a/b``
    and ``a:b``, get folders of their own)."""
    sample = traj.sample
    img_dir = out_dir / IMAGES_DIR / image_folder_name(sample.id)
    if img_dir.exists():
        shutil.rmtree(img_dir)  # a retried sample replaces its earlier images (only its own: the name is its id's)
    rel = lambda p: p.relative_to(out_dir).as_posix()  # noqa: E731
    inputs = []
    for i, image in enumerate(sample.images):
        _save_png(image, img_dir / f"input_{i}.png")
        inputs.append(rel(img_dir / f"input_{i}.png"))
    summary = traj.summary()
    shown = iter(traj.tool_images)
    for k, (rnd, rnd_row) in enumerate(zip(traj.rounds, summary["rounds"], strict=True), 1):
        paths = []
        for j in range(rnd.images_shown):
            path = img_dir / f"round{k}_{j}.png"
            _save_png(next(shown), path)
            paths.append(rel(path))
        rnd_row["images"] = paths
        err = rnd.result.error if rnd.result is not None else None
        rnd_row["error"] = None if err is None else f"{err.type}: {err.message}"
    meta = {k: v for k, v in sample.meta.items() if k != "annotation"}
    row: dict[str, Any] = {
        "id": sample.id,
        "task": sample.task,
        "question": sample.question,
        "options": sample.options,
        "gold": sample.answer,
        "prediction": summary.pop("answer"),
        **summary,
        "input_images": inputs,
        "meta": _json_safe(meta),
        "verdict": _json_safe(verdict),
        "correct": None if verdict is None else verdict.get("correct"),
    }
    annotation = sample.meta.get("annotation")
    if isinstance(annotation, Image.Image):
        _save_png(annotation, img_dir / "annotation.png")
        row["annotation_image"] = rel(img_dir / "annotation.png")
    return row


# --------------------------------------------------------------------------- scoring glue

def judge_endpoint(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(judge model, base URL): ``--judge-model``/``--judge-url``, else ``VTHINKER_JUDGE_MODEL``/
    ``VTHINKER_JUDGE_URL``; ``(None, None)`` without a judge model."""
    model = args.judge_model or os.environ.get("VTHINKER_JUDGE_MODEL") or None
    url = args.judge_url or os.environ.get("VTHINKER_JUDGE_URL") or None
    if model is None:
        if args.judge_url:
            raise SystemExit("--judge-url needs --judge-model")
        return None, None
    return model, url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


def make_judge(args: argparse.Namespace, out: Path) -> Any:
    """The LLM judge of the scoring module (verdicts cached in ``<output>/judge_cache.jsonl`` unless
    ``VTHINKER_JUDGE_CACHE`` says otherwise; prompt files and limits from ``VTHINKER_JUDGE_*``), or
    ``None``: judge-free scoring (pixel metric for VTBench drawings, answer matching otherwise)."""
    model, base_url = judge_endpoint(args)
    if model is None:
        return None
    from vthinker_plugins.scoring import Judge

    options = {"cache_path": out / "judge_cache.jsonl", **Judge.env_options()}
    return Judge(base_url, model, api_key=args.judge_api_key, **options)


def scoring_settings(args: argparse.Namespace, scoring_on: bool) -> dict[str, Any]:
    """How rows are scored (the ``SCORING_KEYS`` of run.json): ``--eval``, the judge endpoint, a hash of
    each ``VTHINKER_JUDGE_PROMPT_*`` file and the pixel-metric settings. Rows scored otherwise are
    re-scored on resume."""
    if not scoring_on:
        return dict.fromkeys(SCORING_KEYS) | {"eval": False}
    from vthinker_plugins.scoring import Judge, PixelMetricConfig

    model, url = judge_endpoint(args)
    prompts = None
    if model is not None:
        prompts = {}
        for task, file in sorted(Judge.env_options().get("prompt_files", {}).items()):
            try:
                prompts[task] = hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
            except OSError as exc:
                raise SystemExit(f"judge prompt file for {task} ({file}): {exc}") from None
    return {"eval": True, "judge_model": model, "judge_url": url, "judge_prompts": prompts,
            "pixel_metric": asdict(PixelMetricConfig())}


# --------------------------------------------------------------------------- main

def _model_slug(model: str) -> str:
    return safe_name(model.rstrip("/").split("/")[-1] if not model.startswith(("openai:", "vllm:")) else model)


def prepare(args: argparse.Namespace) -> tuple[str, str | None, str, Path, bool]:
    """(benchmark, data, model, output dir, eval) after applying the built-in defaults."""
    benchmark, data, model, scoring_on = args.benchmark, args.data, args.model, args.eval
    if benchmark is None:
        out = Path(args.output or Path("runs") / "default")
        from vthinker_plugins.data.vtbench_sample import DEFAULT_FILE_NAME, make_vtbench_sample

        data_file = out / "data" / DEFAULT_FILE_NAME
        if data is None:
            if not data_file.exists():
                make_vtbench_sample(data_file, n=args.sample_rows)
            data = str(data_file)
        benchmark, model, scoring_on = "vtbench", model or "reference", True
    elif model is None:
        raise SystemExit("--model is required with --benchmark: a checkpoint path, openai:NAME, vllm:PATH or reference")
    else:
        out = Path(args.output or Path("runs") / f"{safe_name(Path(benchmark).stem)}__{_model_slug(model)}")
    return benchmark, data, model, out, scoring_on


def main(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from vthinker_plugins.backends import is_transport_option, make_backend, parse_options
    from vthinker_plugins.data.benchmarks import load_benchmark
    from vthinker_plugins.loop import InteractionLoop
    from vthinker_plugins.protocol import DEFAULT_PROMPTS, PromptSet

    started = time.perf_counter()
    benchmark, data, model, out, scoring_on = prepare(args)
    if args.overwrite and out.exists():
        for name in (RESULTS_FILE, SUMMARY_FILE, REPORT_FILE, IMAGES_DIR, "run.json"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    results = out / RESULTS_FILE

    from vthinker_plugins.data.sources import DataError

    try:
        samples = load_benchmark(benchmark, data=data, split=args.split, limit=args.limit)
    except DataError as exc:  # bad input is the user's to fix: a message, not a traceback
        raise SystemExit(f"vthinker run: bad data: {exc}") from None
    if args.max_rounds is not None:
        for s in samples:
            s.max_rounds = args.max_rounds
    identity = {
        "benchmark": benchmark, "data": data, "split": args.split, "model": model,
        # Where the model is reached (device, endpoint, credentials) is not what generated the rows;
        # credentials must never land in the output folder.
        "model_options": sorted(o for o in args.model_option if not is_transport_option(o.partition("=")[0])),
        "max_rounds": args.max_rounds,
        "system_prompt_file": args.system_prompt_file, "user_prompt_file": args.user_prompt_file,
        "temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
        "max_tool_images": args.max_tool_images, "persistent_state": args.persistent_state,
    }
    scoring = scoring_settings(args, scoring_on)
    fingerprint = scoring_fingerprint(scoring)
    recorded = check_run_identity(out, identity)

    scorer = None
    judge = None
    if scoring_on:
        from vthinker_plugins.scoring import score_sample

        scorer, judge = score_sample, make_judge(args, out)
    # Rows scored with other settings (or whose judge failed) are scored again from their stored text and
    # images; the results file is rewritten before run.json records the new settings, so a kill in between
    # leaves rows that the next run re-scores again.
    by_id = {str(s.id): s for s in samples}
    plan = plan_resume(results, out, set(by_id), fingerprint, recorded)
    rescored: list[dict[str, Any]] = []
    if plan.rescore or plan.rejudge:
        from vthinker_plugins.scoring import ascore_sample

        rescored = rescore_rows(plan.rescore + plan.rejudge, by_id, out, ascore_sample if scoring_on else None,
                                judge, fingerprint)
    if rescored or plan.rewrite:
        fresh = {str(r["id"]): r for r in rescored}
        write_results(results, [fresh.get(str(r["id"]), r) for r in plan.keep])
    write_run_json(out, {**identity, **scoring})
    done = {**plan.done, **{str(r["id"]): r for r in rescored}}
    todo = [s for s in samples if str(s.id) not in done]
    print(f"vthinker run: {benchmark} ({len(samples)} samples, {len(samples) - len(todo)} already done) "
          f"with {model} -> {out}")
    if plan.rescore or plan.rejudge or plan.regenerate:
        note = f" ({len(plan.incomplete)} lacked their stored text or images)" if plan.incomplete else ""
        print(f"resume: {len(plan.rescore)} row(s) re-scored with {describe_scoring(scoring)}, "
              f"{len(plan.rejudge)} re-judged, {len(plan.regenerate)} regenerated{note}")
    n_failed = sum(map(_unscored_by_failure, rescored))
    if n_failed:
        print(f"resume: scoring still failed for {n_failed} re-scored row(s); re-run to retry them")

    prompts = DEFAULT_PROMPTS
    if args.system_prompt_file or args.user_prompt_file:
        prompts = PromptSet.from_files(args.system_prompt_file, args.user_prompt_file)

    n_errors = 0
    if todo:
        backend = make_backend(model, **parse_options(args.model_option))
        config = LoopConfig(
            max_new_tokens=args.max_new_tokens,
            max_tool_images=args.max_tool_images,
            temperature=args.temperature,
            top_p=args.top_p,
            persistent_state=args.persistent_state,
            concurrency=args.concurrency,
        )
        loop = InteractionLoop(backend, config=config, prompts=prompts)
        bar = tqdm(total=len(samples), initial=len(samples) - len(todo), unit="sample", desc="vthinker run",
                   dynamic_ncols=True)
        scored = [r["correct"] for r in done.values() if r.get("correct") is not None]

        def finish(traj: Trajectory) -> None:
            # Runs on one worker thread: scoring (maybe a judge call) never stalls the generation loop,
            # and rows are appended one at a time.
            nonlocal n_errors
            verdict = None
            if scorer is not None and traj.error is None:
                try:
                    verdict = scorer(traj.sample, traj.text, traj.tool_images, judge=judge)
                except Exception as exc:  # noqa: BLE001 - recorded as an error row, retried on re-run
                    traj.error = f"{_SCORING_FAILED} {type(exc).__name__}: {exc}"
            row = trajectory_row(traj, out, verdict)
            row["scored_with"] = fingerprint
            append_row(results, row)
            n_errors += row["error"] is not None
            if row["correct"] is not None:
                scored.append(bool(row["correct"]))
            postfix = {"errors": n_errors}
            if scored:
                postfix["acc"] = f"{100 * sum(scored) / len(scored):.1f}%"
            bar.set_postfix(postfix)
            bar.update(1)

        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vthinker-finish")
        pending: list[Future[None]] = []
        try:
            loop.run(todo, on_result=lambda traj: pending.append(finisher.submit(finish, traj)))
            for future in pending:
                future.result()  # re-raise a failure to write a row
        finally:
            finisher.shutdown(wait=True)
            bar.close()
            backend.close()

    rows = read_results(results)
    order = {s.id: i for i, s in enumerate(samples)}
    rows = sorted((r for r in rows if r["id"] in order), key=lambda r: order[r["id"]])
    summary = build_summary(benchmark, data, model, rows, len(samples), scoring_on, time.perf_counter() - started,
                            this_run={"generated": len(todo), "rescored": len(plan.rescore),
                                      "rejudged": len(plan.rejudge), "regenerated": len(plan.regenerate)},
                            scoring=scoring)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not args.no_report:
        from vthinker_plugins.report import write_report

        write_report(rows, summary, out / REPORT_FILE, base_dir=out)
    print(f"results: {results}\nsummary: {out / SUMMARY_FILE}")
    if not args.no_report:
        print(f"report:  {out / REPORT_FILE}")
    if summary.get("metrics"):
        print(json.dumps(summary["metrics"], indent=2, ensure_ascii=False)[:4000])
    if summary["n_errors"]:
        print(f"{summary['n_errors']} sample(s) ended in an error; re-run the same command to retry them")
    return 0


def build_summary(benchmark: str, data: str | None, model: str, rows: list[dict[str, Any]], n_samples: int,
                  scoring_on: bool, elapsed_s: float, this_run: dict[str, int] | None = None,
                  scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run facts plus the scoring module's metrics over every scored row. ``this_run``: what this invocation
    did (samples ``generated`` by the model, rows ``rescored``/``rejudged`` from their stored trajectories,
    earlier rows ``regenerated``); ``scoring``: the scoring settings of every row."""
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
    }


