"""Task functions for the lmms-eval YAMLs in ``eval_tasks/lmms_eval`` (referenced by dotted path).

Each task's ``process_docs`` replaces the YAML's one-row source file by the real data (hub id or local
files, chosen by ``VTHINKER_*_DATA``) and gives every doc ``vthinker_task``, ``vthinker_key`` and
``vthinker_base_dir``. Data sources and doc fields: docs/harnesses.md.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.lmms_eval import records
from vthinker_plugins.sample import Sample

SOURCE_COLUMN = "vthinker_source"
TASK_COLUMN = "vthinker_task"
KEY_COLUMN = "vthinker_key"
BASE_DIR_COLUMN = "vthinker_base_dir"
WHERE_COLUMN = "vthinker_where"  # file and row of the doc, for error messages


class TaskDataError(SystemExit):
    """Task data that cannot be loaded (a file that does not parse, an unreachable hub): ends the run with
    its one-line message. A ``SystemExit``, not an ``Exception``, because lmms-eval 0.7.3 retries a failing
    ``process_docs`` five times 2 s apart (tenacity on ``ConfigurableTask.download``) and prints a
    traceback for any ``Exception``; neither helps with data the user has to fix."""

#: The VTBench subtask a task evaluates -> the ``Sample.task`` of that item.
VTBENCH_KINDS = ("vtbench_perception", "vtbench_instruction", "vtbench_reasoning")


# --------------------------------------------------------------------------- data


def _resolve_source(stub: Any, fmt: str | None = None) -> tuple[Any, str, list[str] | None]:
    """Load the real data named by a source file (or keep real data as is); returns (dataset, base_dir,
    where each row comes from -- ``None`` for data kept as is). Data that cannot be had is a
    :class:`TaskDataError` naming the file and line, or the variable to set when the hub is out of reach.
    ``fmt="visulogic"``: a hub id is first downloaded in its hub layout (``data.jsonl``, ``images.zip``)."""
    from vthinker_plugins.data.benchmarks import local_copy_hint
    from vthinker_plugins.data.sources import DataError, load_rows, row_locator

    if SOURCE_COLUMN not in stub.column_names:
        return stub, "", None
    if len(stub) != 1:
        raise ValueError(f"task source file must hold exactly one row, found {len(stub)}")
    row = stub[0]
    env = row.get("env") or ""
    source = os.environ.get(env, "").strip() or row[SOURCE_COLUMN]
    split = row.get("split") or None
    _warn_if_judge_unreachable()
    hint = local_copy_hint(env or None)
    try:
        if fmt == "visulogic":
            from vthinker_plugins.data.benchmarks import visulogic_local

            source, split = visulogic_local(source, local_hint=hint), None
        dataset = load_rows(source, split, local_hint=hint)
    except DataError as exc:
        raise TaskDataError(f"lmms_eval: task data {source}: {exc}") from None
    path = Path(source).expanduser()
    base_dir = str((path if path.is_dir() else path.parent).resolve()) if path.exists() else ""
    if len(dataset) == 0:
        raise TaskDataError(f"lmms_eval: {source} (split {split}): no rows; check {env or 'the task data source'}")
    locate = row_locator(source, split)
    return dataset, base_dir, [locate(i) for i in range(len(dataset))]


_warned: set[str] = set()


def _warn_if_judge_unreachable() -> None:
    """Say at the start, once per endpoint, when the configured judge does not answer (its docs would be
    left unscored: ``judge_failed``, accuracy null)."""
    from loguru import logger

    try:
        judge = _judge()
    except (OSError, ValueError) as exc:  # a VTHINKER_JUDGE_* setting that is wrong
        raise TaskDataError(f"lmms_eval: judge settings: {exc}") from None
    if judge is None or judge.base_url in _warned:
        return
    _warned.add(judge.base_url)
    from vthinker_plugins.factory import unreachable_judge_note

    if (note := unreachable_judge_note(judge, "docs")) is not None:
        logger.warning(note)


def _tag(dataset: Any, task: str, key_prefix: str, base_dir: str, where: list[str] | None,
         ids: list[str] | None = None) -> Any:
    if ids is None:
        if "id" not in dataset.column_names:
            raise ValueError(f"{key_prefix}: the data has no 'id' column (columns: {dataset.column_names})")
        ids = [str(x) for x in dataset["id"]]
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{key_prefix}: duplicate sample id {i!r} in the data")
        seen.add(i)
    for name in (TASK_COLUMN, KEY_COLUMN, BASE_DIR_COLUMN, WHERE_COLUMN):
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    # add_column leaves the (large, embedded) image columns untouched, unlike map().
    dataset = dataset.add_column(TASK_COLUMN, [task] * len(ids))
    dataset = dataset.add_column(KEY_COLUMN, [f"{key_prefix}:{i}" for i in ids])
    dataset = dataset.add_column(WHERE_COLUMN, where or [f"{key_prefix} doc {i}" for i in range(len(ids))])
    return dataset.add_column(BASE_DIR_COLUMN, [base_dir] * len(ids))


def _vtbench_docs(dataset: Any, kind: str) -> Any:
    data, base_dir, where = _resolve_source(dataset)
    return _tag(data, kind, kind, base_dir, where)


def vtbench_perception_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vtbench_perception``."""
    return _vtbench_docs(dataset, "vtbench_perception")


def vtbench_instruction_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vtbench_instruction``."""
    return _vtbench_docs(dataset, "vtbench_instruction")


def vtbench_reasoning_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vtbench_reasoning``."""
    return _vtbench_docs(dataset, "vtbench_reasoning")


def _mathvision_docs(dataset: Any, task_name: str) -> Any:
    data, base_dir, where = _resolve_source(dataset)
    return _tag(data, "mathvision", task_name, base_dir, where)


def mathvision_test_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vthinker_mathvision_test``."""
    return _mathvision_docs(dataset, "vthinker_mathvision_test")


def mathvision_testmini_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vthinker_mathvision_testmini``."""
    return _mathvision_docs(dataset, "vthinker_mathvision_testmini")


def _column(data: Any, names: tuple[str, ...], task: str) -> list[Any]:
    for name in names:
        if name in data.column_names:
            return list(data[name])
    raise ValueError(f"{task}: the data has no {' or '.join(map(repr, names))} column (columns: {data.column_names})")


def wemath_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vthinker_wemath``: ids are ``<ID>-<part>`` (``ID`` names a problem group)."""
    from vthinker_plugins.data.benchmarks import wemath_sample_id

    data, base_dir, where = _resolve_source(dataset)
    ids = [wemath_sample_id(g, k) for g, k in zip(_column(data, ("ID",), "vthinker_wemath"),
                                                   _column(data, ("key",), "vthinker_wemath"), strict=True)]
    return _tag(data, "wemath", "vthinker_wemath", base_dir, where, ids)


def visulogic_docs(dataset: Any) -> Any:
    """``process_docs`` of ``vthinker_visulogic`` (hub ``id``, or a TSV's ``index``)."""
    data, base_dir, where = _resolve_source(dataset, "visulogic")
    ids = [str(i) for i in _column(data, ("id", "index"), "vthinker_visulogic")]
    return _tag(data, "visulogic", "vthinker_visulogic", base_dir, where, ids)


# --------------------------------------------------------------------------- doc -> sample


def doc_to_sample(doc: dict[str, Any]) -> Sample:
    """The :class:`Sample` of a doc prepared by one of the ``process_docs`` above."""
    task = doc.get(TASK_COLUMN)
    where = doc.get(WHERE_COLUMN) or doc.get(KEY_COLUMN) or f"doc {doc.get('id')!r}"
    if task in VTBENCH_KINDS:
        from vthinker_plugins.data.benchmarks import vtbench_samples

        samples = vtbench_samples(doc, where=where)
        for sample in samples:
            if sample.task == task:
                return sample
        raise ValueError(f"{where}: no {task} item among {[s.task for s in samples]}")
    if task == "mathvision":
        from vthinker_plugins.data.benchmarks import mathvision_sample

        return mathvision_sample(doc, doc.get(BASE_DIR_COLUMN) or None, where=where)
    if task == "wemath":
        from vthinker_plugins.data.benchmarks import wemath_sample

        return wemath_sample(doc, doc.get(BASE_DIR_COLUMN) or None, where=where)
    if task == "visulogic":
        from vthinker_plugins.data.benchmarks import visulogic_sample

        return visulogic_sample(doc, doc.get(BASE_DIR_COLUMN) or None, where=where)
    raise ValueError(f"{where}: not a V-Thinker task doc (no '{TASK_COLUMN}' column; was process_docs set?)")


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    """The input images of the doc (RGB)."""
    return [image.convert("RGB") for image in doc_to_sample(doc).images]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The question (with options where the benchmark has them). The ``vthinker`` model wraps it in
    the V-Thinker prompt itself; ``pre_prompt``/``post_prompt`` kwargs serve other models."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc_to_sample(doc).question}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc: dict[str, Any]) -> str:
    """The reference answer (text); for perception/instruction the ground truth is an image."""
    answer = doc_to_sample(doc).answer
    return "" if answer is None else str(answer)


# --------------------------------------------------------------------------- scoring

_judge_lock = threading.Lock()
_judge_cache: dict[str, Any] = {}


def _judge() -> Any:
    """The LMM judge configured through the environment (``VTHINKER_JUDGE_*``), or ``None``."""
    with _judge_lock:
        if "judge" not in _judge_cache:
            from vthinker_plugins.factory import JudgeSettings, make_judge

            _judge_cache["judge"] = make_judge(JudgeSettings.from_env())
        return _judge_cache["judge"]


def score_doc(doc: dict[str, Any], response: str) -> dict[str, Any]:
    """Score one doc: the verdict of :func:`vthinker_plugins.scoring.score_sample`, plus where the
    trajectory and generated images are (``generated_images``, ``trajectory``) and a 0/1 ``score``."""
    from vthinker_plugins.runs.trajectory import load_images
    from vthinker_plugins.scoring import score_sample

    sample = doc_to_sample(doc)
    key = doc.get(KEY_COLUMN)
    record = records.lookup(key)
    image_paths: list[str] = list(record.get("generated_images", [])) if record else []
    prediction = record.get("text", response) if record else response
    verdict = dict(score_sample(sample, prediction, load_images(image_paths), judge=_judge()))
    verdict.update(
        id=sample.id,
        key=key,
        task=sample.task,
        generated_images=image_paths,
        trajectory=record.get("record") if record else None,
        score=1.0 if verdict.get("correct") else 0.0,
    )
    if record and record.get("error"):
        verdict["generation_error"] = record["error"]
    return verdict


def _results(doc: dict[str, Any], results: list[str], metrics: tuple[str, ...]) -> dict[str, Any]:
    response = results[0] if results else ""
    verdict = score_doc(doc, response if isinstance(response, str) else str(response))
    # The first metric carries the whole verdict (it is what the samples file shows);
    # the others only what their aggregation needs.
    out: dict[str, Any] = {metrics[0]: verdict}
    for name in metrics[1:]:
        out[name] = {k: verdict.get(k) for k in _SLIM_FIELDS}
    return out


def vtbench_image_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``process_results`` of perception and instruction-guided interaction (judged drawings)."""
    return _results(doc, results, ("accuracy", "pixel_accuracy", "judge_failed", "judge_pixel_agreement"))


def vtbench_reasoning_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``process_results`` of interactive reasoning (answer equivalence, judge optional)."""
    return _results(doc, results, ("accuracy", "judge_failed"))


def mathvision_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``process_results`` of the MathVision tasks."""
    return _results(doc, results, ("accuracy",))


def wemath_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``process_results`` of ``vthinker_wemath``."""
    return _results(doc, results, ("accuracy", "wemath_strict", "wemath_loose"))


def visulogic_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``process_results`` of ``vthinker_visulogic``."""
    return _results(doc, results, ("accuracy",))


# --------------------------------------------------------------------------- aggregation

#: What the metrics other than the first carry per doc (enough for their aggregation).
_SLIM_FIELDS = ("id", "task", "correct", "judge", "judge_status", "pixel", "score", "group", "step", "category")


def _verdicts(items: list[Any]) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def _task_metrics(items: list[Any]) -> dict[str, Any]:
    """:func:`vthinker_plugins.scoring.summarize` of one task's verdicts (all docs share a task)."""
    from vthinker_plugins.scoring import summarize

    summary = summarize(_verdicts(items))
    if len(summary) > 1:
        raise ValueError(f"verdicts of several scoring tasks in one lmms-eval task: {sorted(summary)}")
    return next(iter(summary.values()), {})


def _percent(rate: Any) -> float | None:
    return None if rate is None else round(100 * float(rate), 2)


def aggregate_accuracy(items: list[Any]) -> float | None:
    """Accuracy in percent over scored docs (judge verdicts for drawings, answer equivalence otherwise);
    when it is null the log says why (e.g. the judge failed on every doc)."""
    from loguru import logger

    from vthinker_plugins.scoring import null_accuracy_reason

    metrics = _task_metrics(items)
    reason = null_accuracy_reason(metrics, _verdicts(items)) if metrics else None
    if reason is not None:
        task = next((v.get("task") for v in _verdicts(items)), "task")
        logger.warning(f"{task}: {reason}")
    return _percent(metrics.get("accuracy"))


def aggregate_pixel_accuracy(items: list[Any]) -> float | None:
    """Pass rate (percent) of the judge-free pixel metric on the drawings."""
    return _percent(_task_metrics(items).get("pixel_pass_rate"))


def aggregate_judge_failed(items: list[Any]) -> int:
    """How many docs the judge failed to score (reported, never counted as wrong silently)."""
    return int(_task_metrics(items).get("judge_failed", 0) or 0)


def aggregate_agreement(items: list[Any]) -> float | None:
    """Agreement (percent) of judge and pixel metric on docs where both gave a verdict."""
    return _percent(_task_metrics(items).get("judge_pixel_agreement"))


def _write_layouts(items: list[Any], args: Any, kind: str, layout: Any, title: str) -> None:
    """Log ``layout(verdicts)`` of every task among ``items`` and write it to :func:`scores_path`."""
    from loguru import logger

    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for verdict in _verdicts(items):
        by_task[str(verdict.get("key") or kind).split(":", 1)[0]].append(verdict)
    for task, group in by_task.items():
        report = layout(group)
        logger.info(f"{task} ({title}): {json.dumps(report)}")
        path = scores_path(args, task, f"{kind}_scores")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=1), encoding="utf-8")
            logger.info(f"{task}: {title} written to {path}")


def aggregate_mathvision(items: list[Any], args: Any = None) -> float | None:
    """Overall MathVision accuracy (percent); the official per-level / per-subject layout
    (``-all``, ``-level1``, ``-level1_<subject>``, ...) is logged and written to
    ``<output_path>/<model>/<date>_<task>_mathvision_scores.json`` (:func:`mathvision_scores_path`)."""
    from vthinker_plugins.scoring import mathvision_report

    _write_layouts(items, args, "mathvision", mathvision_report, "official MATH-V layout")
    return _percent(_task_metrics(items).get("accuracy"))


def aggregate_wemath(items: list[Any], args: Any = None) -> float | None:
    """Per-problem We-Math accuracy (percent); the official four-dimensional layout (``Score (Strict)``,
    ``InsufficientKnowledge (Strict)``, ..., ``One-step(S1)``, ...) is logged and written to
    ``<output_path>/<model>/<date>_<task>_wemath_scores.json``."""
    from loguru import logger

    from vthinker_plugins.scoring import wemath_report, wemath_scores

    _write_layouts(items, args, "wemath", wemath_report, "official We-Math layout")
    scores = wemath_scores(_verdicts(items))
    if scores["incomplete_groups"]:
        logger.warning(f"vthinker_wemath: {scores['incomplete_groups']} of {scores['groups']} problem groups lack a "
                       "part (--limit?); the four dimensions are only meaningful over whole groups")
    return _percent(_task_metrics(items).get("accuracy"))


def aggregate_wemath_strict(items: list[Any]) -> float | None:
    """We-Math score (percent), strict variant: (N - 0.5 IG - RM_strict - IK) / N over the N groups."""
    from vthinker_plugins.scoring import wemath_scores

    return _percent(wemath_scores(_verdicts(items))["score_strict"])


def aggregate_wemath_loose(items: list[Any]) -> float | None:
    """We-Math score (percent), loose variant."""
    from vthinker_plugins.scoring import wemath_scores

    return _percent(wemath_scores(_verdicts(items))["score_loose"])


def aggregate_visulogic(items: list[Any], args: Any = None) -> float | None:
    """VisuLogic accuracy (percent); the accuracy per reasoning category is logged and written to
    ``<output_path>/<model>/<date>_<task>_visulogic_scores.json``."""
    from vthinker_plugins.scoring import visulogic_report

    _write_layouts(items, args, "visulogic", visulogic_report, "VisuLogic accuracy per category")
    return _percent(_task_metrics(items).get("accuracy"))


def mathvision_scores_path(args: Any, task: str) -> Path | None:
    """Where :func:`aggregate_mathvision` writes ``task``'s layout (:func:`scores_path`)."""
    return scores_path(args, task, "mathvision_scores")


def scores_path(args: Any, task: str, suffix: str) -> Path | None:
    """Where a task's official layout goes, named the way lmms-eval names its own result files:
    ``<output_path>/<model name, sanitised>/<date>_<task>_<suffix>.json`` beside ``<date>_results.json``
    (the model name is the ``pretrained=`` ... of ``--model_args``, as lmms-eval's evaluation tracker
    takes it), so models sharing an ``--output_path`` and runs of one model keep separate files.
    ``None`` without ``--output_path``."""
    from lmms_eval.utils import get_datetime_str, sanitize_model_name

    from .compat import results_model_name

    output_path = getattr(args, "output_path", None)
    if not output_path:
        return None
    model_args = getattr(args, "model_args", None) or ""
    model_name = results_model_name(model_args) if isinstance(model_args, str) else ""
    timezone = getattr(args, "timezone", None)
    date_id = (get_datetime_str(timezone=timezone) if timezone else get_datetime_str()).replace(":", "-")
    return Path(output_path) / sanitize_model_name(model_name) / f"{date_id}_{task}_{suffix}.json"
