"""Score model outputs per task, and summarise verdicts: the one scoring entry point for
``vthinker run``, the lmms-eval and VLMEvalKit plugins and the GRPO rewards.

A verdict is a plain, JSON-ready dict (``id``, ``task``, ``correct`` -- ``None`` when the row could
not be scored -- ``extracted``, ``judge``, ``judge_status`` and per-task fields). Tasks: ``mathvision``,
``wemath``, ``visulogic``, the three ``vtbench_*`` tasks, and ``generic`` for any other.

Design notes (verdict fields, what each task does): docs/scoring.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from PIL import Image

from vthinker_plugins.data.sources import to_image
from vthinker_plugins.protocol import extract_answer, strip_observations
from vthinker_plugins.sample import Sample
from vthinker_plugins.scoring.answers import answers_match
from vthinker_plugins.scoring.judge import Judge, JudgeResult
from vthinker_plugins.scoring.mathvision import mathvision_report, score_mathvision
from vthinker_plugins.scoring.pixel_metric import PixelMetricConfig, pixel_metric
from vthinker_plugins.scoring.visulogic import score_visulogic, visulogic_report
from vthinker_plugins.scoring.wemath import score_wemath, wemath_report, wemath_scores

T = TypeVar("T")
DRAWING_TASKS = ("vtbench_perception", "vtbench_instruction")
REASONING_JUDGE_POLICIES = ("fallback", "always")
#: How much of the end of a response the answer judge sees when no answer could be extracted.
_TAIL_CHARS = 1500


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is None:  # outside the except block: errors of the coroutine keep a clean traceback
        return asyncio.run(coro)  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


def _verdict(sample: Sample, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": sample.id, "task": sample.task, "correct": None, "extracted": None,
                           "judge": None, "judge_status": "skipped"}
    out.update(fields)
    return out


def _with_judge(out: dict[str, Any], result: JudgeResult) -> dict[str, Any]:
    """``out`` decided by the judge's ``result`` (``correct`` is ``None`` when the judge failed)."""
    out["judge"] = result.value
    out["correct"] = bool(result.value) if result.ok else None
    out["judge_status"] = result.status
    if result.status == "failed":
        out["judge_error"] = result.error
    return out


def _need(sample: Sample, what: str, value: Any) -> Any:
    if value is None or value == "":
        raise ValueError(f"sample {sample.id!r} (task {sample.task}): missing {what}, needed for scoring")
    return value


async def _score_mathvision(sample: Sample, prediction: str, math_verify: bool) -> dict[str, Any]:
    gold = _need(sample, "answer (Sample.answer)", sample.answer)
    result = score_mathvision(prediction, str(gold), sample.options, math_verify=math_verify)
    return _verdict(sample, **result, level=sample.meta.get("level"), subject=sample.meta.get("subject"))


def _score_choice(sample: Sample, prediction: str) -> dict[str, Any]:
    """We-Math and VisuLogic: the official choice rule against the gold letter."""
    gold = str(_need(sample, "answer (Sample.answer)", sample.answer))
    if sample.task == "wemath":
        return _verdict(sample, **score_wemath(prediction, gold), group=sample.meta.get("group"),
                        step=sample.meta.get("step"), knowledge_concept=sample.meta.get("knowledge_concept"))
    return _verdict(sample, **score_visulogic(prediction, gold), category=sample.meta.get("category"))


async def _score_reasoning(sample: Sample, prediction: str, judge: Judge | None, policy: str) -> dict[str, Any]:
    gold = str(_need(sample, "answer (Sample.answer)", sample.answer))
    extracted = extract_answer(prediction)
    rule = bool(extracted) and answers_match(extracted, gold, sample.options)
    out = _verdict(sample, extracted=extracted, rule_correct=rule, correct=rule)
    if judge is None or (rule and policy == "fallback"):
        return out
    said = extracted if extracted else strip_observations(prediction)[-_TAIL_CHARS:]
    if not said.strip():
        return out  # nothing to judge: wrong without a call
    result = await judge.judge_answer(sample.question, said, gold)
    return _with_judge(out, result)


async def _score_drawing(
    sample: Sample,
    prediction: str,
    generated_images: Sequence[Image.Image],
    judge: Judge | None,
    pixel_config: PixelMetricConfig | None,
) -> dict[str, Any]:
    annotation = _need(sample, "meta['annotation'] (the ground-truth annotation image)", sample.meta.get("annotation"))
    where = f"sample {sample.id} meta['annotation']"
    try:
        truth = to_image(annotation, where=where)
    except OSError as exc:  # undecodable bytes: PIL raises before to_image can name the field
        raise ValueError(f"{where}: cannot decode the ground-truth annotation image: {exc}") from exc
    original = sample.images[0]
    generated = generated_images[0] if generated_images else None
    pixel = pixel_metric(original, generated, truth, pixel_config).as_dict()
    out = _verdict(sample, extracted=extract_answer(prediction), pixel=pixel, no_image=generated is None)
    if judge is None:
        out["correct"] = pixel["passed"]
        return out
    if generated is None:
        out["correct"] = False  # nothing drawn: wrong, and no judge call is spent on it
        return out
    instruction = sample.meta.get("instruction") or sample.question
    result = await judge.judge_images(sample.task, sample.question, original, generated, truth, instruction=instruction)
    return _with_judge(out, result)


async def ascore_sample(
    sample: Sample,
    prediction: str,
    generated_images: Sequence[Image.Image] | None = None,
    judge: Judge | None = None,
    *,
    pixel_config: PixelMetricConfig | None = None,
    reasoning_judge: str = "fallback",
    math_verify: bool = False,
) -> dict[str, Any]:
    """Score one prediction (the full response text) for ``sample``; see the module doc for the verdict.

    ``pixel_config`` tunes the pixel metric; ``reasoning_judge`` (``fallback``/``always``) says when
    the judge is asked on ``vtbench_reasoning``; ``math_verify`` also computes MathVision's
    ``correct_math_verify`` analysis flag on rows the official rules reject (slow; off by default).
    """
    if reasoning_judge not in REASONING_JUDGE_POLICIES:
        raise ValueError(f"reasoning_judge must be one of {REASONING_JUDGE_POLICIES}, not {reasoning_judge!r}")
    prediction = prediction or ""
    generated_images = list(generated_images or [])
    if sample.task == "mathvision":
        return await _score_mathvision(sample, prediction, math_verify)
    if sample.task in ("wemath", "visulogic"):
        return _score_choice(sample, prediction)
    if sample.task == "vtbench_reasoning":
        return await _score_reasoning(sample, prediction, judge, reasoning_judge)
    if sample.task in DRAWING_TASKS:
        return await _score_drawing(sample, prediction, generated_images, judge, pixel_config)
    gold = str(_need(sample, "answer (Sample.answer)", sample.answer))
    extracted = extract_answer(prediction)
    said = extracted if extracted is not None else prediction
    return _verdict(sample, extracted=extracted, correct=answers_match(said, gold, sample.options))


def score_sample(sample: Sample, prediction: str, generated_images: Sequence[Image.Image] | None = None,
                 judge: Judge | None = None, **options: Any) -> dict[str, Any]:
    """Synchronous :func:`ascore_sample` (same ``options``; prefer :func:`score_samples` for many rows: it
    runs judge calls concurrently)."""

    async def once() -> dict[str, Any]:
        try:
            return await ascore_sample(sample, prediction, generated_images, judge, **options)
        finally:
            if judge is not None:
                await judge.aclose()  # the event loop ends with this call; so do its connections

    return run_sync(once())


def _unpack(item: Any) -> tuple[Sample, str, list[Image.Image]]:
    if isinstance(item, dict):
        sample, prediction, images = item["sample"], item.get("prediction") or "", item.get("generated_images")
    else:
        sample, prediction, *rest = item
        images = rest[0] if rest else None
    if callable(images):  # loaded when the row is scored: few rows' images are in memory at once
        images = images()
    return sample, prediction or "", list(images or [])


def score_samples(items: Iterable[Any], judge: Judge | None = None, progress: bool = True, *,
                  return_exceptions: bool = False, **options: Any) -> list[Any]:
    """Score many predictions, judge calls running concurrently (bounded by the judge's concurrency).

    ``items``: ``(sample, prediction, generated_images)`` tuples (the images may be left out, or be a
    function returning them, called when the row is scored) or dicts with those keys. Verdicts come
    back in input order; with ``return_exceptions`` a row whose scoring raised gives its exception.
    ``options``: those of :func:`ascore_sample` (``pixel_config``, ``reasoning_judge``, ``math_verify``).
    """
    items = list(items)

    async def run_all() -> list[Any]:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="scoring", unit="row", disable=not progress)
        limit = asyncio.Semaphore(max(8, 2 * getattr(judge, "concurrency", 4)))  # bounds images in memory

        async def one(item: Any) -> dict[str, Any]:
            async with limit:
                try:
                    return await ascore_sample(*_unpack(item), judge=judge, **options)
                finally:
                    bar.update(1)

        try:
            return list(await asyncio.gather(*(one(item) for item in items), return_exceptions=return_exceptions))
        finally:
            bar.close()
            if judge is not None:
                await judge.aclose()

    return run_sync(run_all())


# --------------------------------------------------------------------------- summary

def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def summarize(verdicts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Metrics per task, keyed by task name.

    For each task: ``n`` rows, ``scored`` (``correct`` not ``None``), ``correct``,
    ``accuracy`` (over scored rows, 0-1) and ``accuracy_pct``, ``unscored``,
    ``judge_failed``, ``judge_ok``. Drawing tasks add ``pixel_pass_rate``, ``pixel_f1_mean``,
    ``no_image`` and, where judge and pixel metric both ran, ``judge_pixel_agreement``
    (and ``judge_pixel_n``). ``vtbench_reasoning`` adds ``rule_accuracy``; ``mathvision`` adds
    ``official`` (the MATH-V report layout, unscored rows counted as wrong) and
    ``accuracy_math_verify`` (``None`` unless every row's flag was computed: ``math_verify=True``);
    ``wemath`` adds ``official`` (the We-Math layout: four dimensions, strict and loose, one-/two-/
    three-step accuracy) and ``four_dimensions`` (the numbers behind it); ``visulogic`` adds
    ``official`` (accuracy overall and per category; unscored rows count as wrong).
    """
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for verdict in verdicts:
        by_task[str(verdict.get("task", "generic"))].append(verdict)
    summary: dict[str, Any] = {}
    for task, rows in by_task.items():
        scored = [row for row in rows if row.get("correct") is not None]
        hits = sum(bool(row["correct"]) for row in scored)
        accuracy = _rate(hits, len(scored))
        metrics: dict[str, Any] = {
            "n": len(rows),
            "scored": len(scored),
            "correct": hits,
            "accuracy": accuracy,
            "accuracy_pct": None if accuracy is None else round(100 * accuracy, 2),
            "unscored": len(rows) - len(scored),
            "judge_failed": sum(row.get("judge_status") == "failed" for row in rows),
            "judge_ok": sum(row.get("judge_status") == "ok" for row in rows),
        }
        if task in DRAWING_TASKS:
            pixels = [row["pixel"] for row in rows if row.get("pixel") and row["pixel"].get("passed") is not None]
            metrics["pixel_n"] = len(pixels)
            metrics["pixel_pass_rate"] = _rate(sum(bool(p["passed"]) for p in pixels), len(pixels))
            metrics["pixel_f1_mean"] = _rate(sum(p["f1"] for p in pixels), len(pixels))
            metrics["no_image"] = sum(bool(row.get("no_image")) for row in rows)
            both = [row for row in rows if row.get("judge") is not None
                    and row.get("pixel") and row["pixel"].get("passed") is not None]
            metrics["judge_pixel_n"] = len(both)
            metrics["judge_pixel_agreement"] = _rate(
                sum(bool(row["judge"]) == bool(row["pixel"]["passed"]) for row in both), len(both))
        if task == "vtbench_reasoning":
            metrics["rule_accuracy"] = _rate(sum(bool(row.get("rule_correct")) for row in rows), len(rows))
        if task == "mathvision":
            metrics["official"] = mathvision_report(rows)
            flags = [row.get("correct_math_verify") for row in rows]
            metrics["accuracy_math_verify"] = (None if any(flag is None for flag in flags)
                                               else _rate(sum(map(bool, flags)), len(rows)))
        if task == "wemath":
            metrics["official"] = wemath_report(rows)
            metrics["four_dimensions"] = wemath_scores(rows)
        if task == "visulogic":
            metrics["official"] = visulogic_report(rows)
        summary[task] = metrics
    return summary


def null_accuracy_reason(metrics: dict[str, Any], verdicts: Iterable[dict[str, Any]]) -> str | None:
    """Why a task's ``accuracy`` (from :func:`summarize`) is null, or ``None`` when it is not: the judge
    failed on its rows (with the judge's most frequent error), or none could be scored."""
    if metrics.get("accuracy") is not None:
        return None
    failed = [v for v in verdicts if v.get("judge_status") == "failed"]
    if failed:
        error = Counter(str(v.get("judge_error") or "no reply") for v in failed).most_common(1)[0][0]
        return f"accuracy is null: the judge failed on {len(failed)} of {metrics.get('n')} row(s) ({error})"
    return f"accuracy is null: none of its {metrics.get('n')} row(s) could be scored"
