"""Benchmark loaders: VTBench (three tasks) and MathVision, from the hub or local files.

>>> samples = load_benchmark("mathvision-testmini", data="../shared/data/mathvision", limit=8)
>>> samples = load_benchmark("vtbench-reasoning")          # We-Math/VTBench from the hub
>>> samples = load_benchmark("path/to/my_vtbench.parquet")  # format detected from the columns

A local ``data`` may be a parquet/jsonl file, a folder of them (the MATH-V GitHub
layout with ``test.jsonl``/``testmini.jsonl`` and ``images/`` loads as is), or a
``save_to_disk`` folder. Rows are decoded lazily, so ``limit`` keeps loading cheap.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vthinker_plugins.data.sources import DataError, load_rows, row_locator, to_image
from vthinker_plugins.sample import Sample

VTBENCH_HUB_ID = "We-Math/VTBench"
MATHVISION_HUB_ID = "MathLLMs/MathVision"

#: The three VTBench tasks: (task name, question column, answer column, annotation column, round limit).
VTBENCH_TASKS = (
    ("vtbench_perception", "question_perception", None, "annotation_perception", 1),
    ("vtbench_instruction", "question_instruction", "answer_instruction", "annotation_instruction", 1),
    ("vtbench_reasoning", "question_reasoning", "answer_reasoning", None, 5),
)
#: Extra columns of the project's VTBench-format sample: reference tool code per task.
VTBENCH_CODE_COLUMNS = {
    "vtbench_perception": "code_perception",
    "vtbench_instruction": "code_instruction",
    "vtbench_reasoning": "code_reasoning",
}

#: Columns a named benchmark's data must have.
REQUIRED_COLUMNS = {
    "vtbench": ("id", "image", "annotation_instruction", "annotation_perception", "question_reasoning",
                "answer_reasoning", "question_perception", "question_instruction", "answer_instruction"),
    "mathvision": ("id", "question", "answer"),
}

#: name -> (default source, split, task filter)
BENCHMARKS: dict[str, tuple[str, str | None, str | None]] = {
    "vtbench": (VTBENCH_HUB_ID, "train", None),
    "vtbench-perception": (VTBENCH_HUB_ID, "train", "vtbench_perception"),
    "vtbench-instruction": (VTBENCH_HUB_ID, "train", "vtbench_instruction"),
    "vtbench-reasoning": (VTBENCH_HUB_ID, "train", "vtbench_reasoning"),
    "mathvision": (MATHVISION_HUB_ID, "test", None),
    "mathvision-testmini": (MATHVISION_HUB_ID, "testmini", None),
}

#: Default source (hub id) -> the environment variable naming a local copy of that benchmark; read by
#: ``vthinker run`` (when no ``--data`` is given), the lmms-eval tasks and the VLMEvalKit datasets.
DATA_ENV = {VTBENCH_HUB_ID: "VTHINKER_VTBENCH_DATA", MATHVISION_HUB_ID: "VTHINKER_MATHVISION_DATA"}


def data_env(name: str) -> str | None:
    """The ``VTHINKER_*_DATA`` variable of a named benchmark (``None`` for a path or an unknown name)."""
    return DATA_ENV.get(BENCHMARKS[name][0]) if name in BENCHMARKS else None


def default_data(name: str) -> str | None:
    """The local copy of a named benchmark that its ``VTHINKER_*_DATA`` variable names, if set."""
    env = data_env(name)
    value = os.environ.get(env, "").strip() if env else ""
    return value or None


def local_copy_hint(env: str | None) -> str:
    """How to use a local copy instead of the hub (the end of a hub error)."""
    what = "a local copy (parquet/jsonl file, folder, or save_to_disk folder)"
    return f"set {env} to {what}; vthinker run also takes --data PATH" if env else f"use {what}"


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    if name not in row:
        raise DataError(f"{where}: missing field {name!r} (fields: {sorted(row)})")
    return row[name]


def _text(row: dict[str, Any], name: str, where: str) -> str:
    value = _field(row, name, where)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
    return value


def _codes(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(c) for c in value if c is not None and str(c).strip()]


def vtbench_samples(row: dict[str, Any], *, where: str = "vtbench row") -> list[Sample]:
    """The three VTBench items of one row (perception, instruction-guided, interactive reasoning).

    Perception and instruction get ``max_rounds=1`` and the ground-truth drawing as
    ``meta["annotation"]``; reasoning gets ``max_rounds=5``. Reference tool code
    (``code_*`` columns of the project's generated sample) goes to ``meta["reference_code"]``.
    """
    row_id = str(_field(row, "id", where))
    where = f"{where} (id={row_id})"
    image = to_image(_field(row, "image", where), where=f"{where} field 'image'")
    samples = []
    for task, q_col, a_col, ann_col, rounds in VTBENCH_TASKS:
        meta: dict[str, Any] = {"row_id": row_id}
        if ann_col is not None:
            meta["annotation"] = to_image(_field(row, ann_col, where), where=f"{where} field {ann_col!r}")
        code_col = VTBENCH_CODE_COLUMNS[task]
        if code_col in row:
            meta["reference_code"] = _codes(row[code_col])
        answer = None
        if a_col is not None:
            raw = _field(row, a_col, where)
            answer = None if raw is None else str(raw)
            if task == "vtbench_reasoning" and not (answer or "").strip():
                raise DataError(f"{where}: field {a_col!r} is empty")
        samples.append(
            Sample(
                id=f"{row_id}_{task.removeprefix('vtbench_')}",
                question=_text(row, q_col, where),
                images=[image],
                answer=answer,
                task=task,
                max_rounds=rounds,
                meta=meta,
            )
        )
    return samples


def _letters_only(options: list[str]) -> bool:
    return all(opt.strip() == letter for opt, letter in zip(options, string.ascii_uppercase, strict=False))


def mathvision_question(question: str, options: list[str]) -> str:
    """The question text shown to the model; multiple-choice options are listed as (A) ... (E)."""
    if not options:
        return question
    letters = string.ascii_uppercase[: len(options)]
    if _letters_only(options):  # the choices are drawn in the image
        return f"{question}\nAnswer with the letter of the correct choice: {', '.join(letters)}."
    listed = "\n".join(f"({letter}) {opt}" for letter, opt in zip(letters, options, strict=True))
    return f"{question}\nChoices:\n{listed}"


def mathvision_sample(
    row: dict[str, Any], base_dir: str | Path | None = None, *, where: str = "mathvision row"
) -> Sample:
    """One MathVision row (hub or MATH-V GitHub layout) as a :class:`Sample`.

    ``options`` holds the option texts (empty for free-form questions), ``answer`` is
    the ground truth as given (a letter for multiple choice), ``meta`` has level and subject.
    """
    row_id = str(_field(row, "id", where))
    where = f"{where} (id={row_id})"
    question = _text(row, "question", where)
    options = row.get("options") or []
    if not isinstance(options, list):
        raise DataError(f"{where}: field 'options' must be a list, got {type(options).__name__}")
    options = [str(o) for o in options]
    answer = _field(row, "answer", where)
    if answer is None or not str(answer).strip():
        raise DataError(f"{where}: field 'answer' is empty")
    # The hub has the decoded image beside the relative path; the GitHub layout only the path.
    image_value = row.get("decoded_image") or _field(row, "image", where)
    image = to_image(image_value, base_dir, where=f"{where} field 'image'")
    return Sample(
        id=row_id,
        question=mathvision_question(question, options),
        images=[image],
        answer=str(answer).strip(),
        options=options,
        task="mathvision",
        meta={"level": row.get("level"), "subject": row.get("subject"), "raw_question": question},
    )


def generic_sample(row: dict[str, Any], base_dir: str | Path | None = None, *, index: int = 0,
                   where: str = "row") -> Sample:
    """A row with ``question``, ``image`` (or ``images``) and optional ``id``/``answer``/``options``/``task``."""
    row_id = str(row.get("id", index))
    where = f"{where} (id={row_id})"
    values = row.get("images") if row.get("images") is not None else [_field(row, "image", where)]
    images = [to_image(v, base_dir, where=f"{where} field 'image'") for v in values]
    return Sample(
        id=row_id,
        question=_text(row, "question", where),
        images=images,
        answer=None if row.get("answer") is None else str(row["answer"]),
        options=[str(o) for o in row.get("options") or []],
        task=str(row.get("task") or "generic"),
        meta={k: v for k, v in row.items() if k in ("level", "subject", "category")},
    )


def detect_format(columns: Iterable[str]) -> str:
    """``vtbench``, ``mathvision`` or ``generic`` from a dataset's column names."""
    cols = set(columns)
    if {"question_reasoning", "question_perception", "question_instruction"} <= cols:
        return "vtbench"
    if {"question", "options", "answer", "level", "subject"} <= cols:
        return "mathvision"
    if "question" in cols and ({"image", "images"} & cols):
        return "generic"
    raise DataError(f"cannot tell the benchmark format from the columns {sorted(cols)}; expected VTBench, "
                    "MathVision, or question + image(s) [+ answer, options, id, task]")


def _base_dir(source: str) -> Path | None:
    path = Path(source).expanduser()
    if path.is_file():
        return path.parent
    return path if path.is_dir() else None


def iter_benchmark(name_or_path: str, data: str | Path | None = None, split: str | None = None,
                   per_task_limit: int | None = None) -> Iterator[Sample]:
    """Samples one by one (lazy); see :func:`load_benchmark`. ``per_task_limit``: the first that many
    samples of each task (reading stops once every task of a VTBench or MathVision source has them)."""
    if name_or_path in BENCHMARKS:
        default_source, default_split, task = BENCHMARKS[name_or_path]
        source = str(data) if data is not None else default_source
        split = split or default_split
    else:
        if data is not None:
            raise DataError(f"--data is only for named benchmarks ({', '.join(BENCHMARKS)}); "
                            f"{name_or_path!r} is itself the data path")
        source, task = str(name_or_path), None
        if not Path(source).expanduser().exists():
            raise DataError(f"unknown benchmark {name_or_path!r}: not one of {', '.join(BENCHMARKS)} "
                            "and no such file or folder")
    rows = load_rows(source, split, local_hint=local_copy_hint(data_env(name_or_path)))
    if name_or_path in BENCHMARKS:
        fmt = "vtbench" if name_or_path.startswith("vtbench") else "mathvision"
        missing = sorted(set(REQUIRED_COLUMNS[fmt]) - set(rows.column_names))
        if fmt == "mathvision" and not ({"image", "decoded_image"} & set(rows.column_names)):
            missing.append("image")
        if missing:
            raise DataError(f"{source}: missing column(s) {missing} for benchmark {name_or_path!r} "
                            f"(columns: {sorted(rows.column_names)})")
    else:
        fmt = detect_format(rows.column_names)
    base = _base_dir(source)
    locate = row_locator(source, split)
    # The tasks a source holds are known for VTBench (all three, or the one asked for) and MathVision.
    known = {"vtbench": {task} if task else {t[0] for t in VTBENCH_TASKS}, "mathvision": {"mathvision"}}.get(fmt)
    taken: Counter[str] = Counter()
    for i, row in enumerate(rows):
        if per_task_limit is not None:
            if known is not None and all(taken[t] >= per_task_limit for t in known):
                return
            if fmt == "generic" and taken[str(row.get("task") or "generic")] >= per_task_limit:
                continue
        where = locate(i)
        if fmt == "vtbench":
            samples = [s for s in vtbench_samples(row, where=where) if task is None or s.task == task]
        elif fmt == "mathvision":
            samples = [mathvision_sample(row, base, where=where)]
        else:
            samples = [generic_sample(row, base, index=i, where=where)]
        for sample in samples:
            if per_task_limit is None or taken[sample.task] < per_task_limit:
                taken[sample.task] += 1
                yield sample


def load_benchmark(
    name_or_path: str,
    data: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> list[Sample]:
    """Load a benchmark as samples.

    Args:
        name_or_path: ``vtbench``, ``vtbench-perception``, ``vtbench-instruction``,
            ``vtbench-reasoning``, ``mathvision``, ``mathvision-testmini``, or a local
            file/folder whose format is detected from its columns.
        data: local copy of a named benchmark (file, folder or ``save_to_disk`` folder);
            default: the hub id.
        split: override the default split (``train`` for VTBench, ``test``/``testmini`` for MathVision).
        limit: keep the first ``limit`` samples of each task (``vtbench``: of each of its three tasks),
            as lmms-eval's ``--limit`` does per task.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    samples: list[Sample] = []
    if limit == 0:
        return samples
    seen: set[str] = set()
    for sample in iter_benchmark(name_or_path, data, split, per_task_limit=limit):
        if sample.id in seen:
            raise DataError(f"{data or name_or_path}: duplicate sample id {sample.id!r}")
        seen.add(sample.id)
        samples.append(sample)
    return samples
