"""Benchmark loaders: VTBench (three tasks), MathVision, We-Math and VisuLogic, from the hub or local files.

:func:`load_benchmark` reads a benchmark from the hub, or from local data in the upstream layouts
(or any file whose columns reveal its format), and returns ``Sample`` rows decoded lazily, so
``limit`` keeps loading cheap.

Examples and accepted local layouts: docs/data.md.
"""

from __future__ import annotations

import os
import re
import string
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vthinker_plugins.data.sources import DataError, DataUnavailable, load_rows, row_locator, to_image
from vthinker_plugins.sample import Sample

VTBENCH_HUB_ID = "We-Math/VTBench"
MATHVISION_HUB_ID = "MathLLMs/MathVision"
WEMATH_HUB_ID = "We-Math/We-Math"
VISULOGIC_HUB_ID = "VisuLogic/VisuLogic"
#: The VisuLogic hub repository is a ``data.jsonl`` plus an ``images.zip`` (no datasets loading script).
VISULOGIC_FILES = ("data.jsonl", "images.zip")

WEMATH_LETTERS = "ABCDEFGH"
VISULOGIC_LETTERS = "ABCD"

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
    "wemath": ("ID", "question", "answer", "key"),
    "visulogic": ("question",),
}
#: Columns of which a format needs one (the hub's name first, then VLMEvalKit's TSV name).
ONE_OF_COLUMNS = {
    "mathvision": (("image", "decoded_image"),),
    "wemath": (("image_path", "image"), ("option", "A")),
    "visulogic": (("image_path", "image"), ("label", "answer")),
}

#: name -> (default source, split, task filter)
BENCHMARKS: dict[str, tuple[str, str | None, str | None]] = {
    "vtbench": (VTBENCH_HUB_ID, "train", None),
    "vtbench-perception": (VTBENCH_HUB_ID, "train", "vtbench_perception"),
    "vtbench-instruction": (VTBENCH_HUB_ID, "train", "vtbench_instruction"),
    "vtbench-reasoning": (VTBENCH_HUB_ID, "train", "vtbench_reasoning"),
    "mathvision": (MATHVISION_HUB_ID, "test", None),
    "mathvision-testmini": (MATHVISION_HUB_ID, "testmini", None),
    "wemath": (WEMATH_HUB_ID, "testmini", None),
    "visulogic": (VISULOGIC_HUB_ID, "train", None),
}

#: Default source (hub id) -> the environment variable naming a local copy of that benchmark; read by
#: ``vthinker run`` (when no ``--data`` is given), the lmms-eval tasks and the VLMEvalKit datasets.
DATA_ENV = {VTBENCH_HUB_ID: "VTHINKER_VTBENCH_DATA", MATHVISION_HUB_ID: "VTHINKER_MATHVISION_DATA",
            WEMATH_HUB_ID: "VTHINKER_WEMATH_DATA", VISULOGIC_HUB_ID: "VTHINKER_VISULOGIC_DATA"}


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


def benchmark_format(name: str) -> str:
    """The row format of a named benchmark: ``vtbench``, ``mathvision``, ``wemath`` or ``visulogic``."""
    return name.split("-", 1)[0]


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


_WEMATH_KEY_RE = re.compile(r"(\d+)steps_(\d+|multi)")
_OPTION_SPLIT_RE = re.compile(r"(?:^|;)\s*([A-H])\s*[.:]\s*")


def _letter(row: dict[str, Any], names: tuple[str, ...], letters: str, where: str) -> str:
    """The gold option letter from the first present column of ``names``."""
    name = next((n for n in names if n in row), names[0])
    value = _field(row, name, where)
    letter = "" if value is None else str(value).strip()
    if len(letter) != 1 or letter not in letters:
        raise DataError(f"{where}: field {name!r} must be one option letter of {', '.join(letters)}, got {value!r}")
    return letter


def wemath_options(row: dict[str, Any], where: str = "wemath row") -> list[str]:
    """The option texts of a We-Math row, in letter order: from the hub's ``option`` string
    (``"A. 3 cm;B. 4 cm; C. ...; E. No correct answer"``) or VLMEvalKit's ``A``...``H`` columns."""
    columns = [row.get(letter) for letter in WEMATH_LETTERS]
    if "option" not in row and columns[0] is not None:
        present = [c for c in columns if c is not None and not (isinstance(c, float) and c != c) and str(c).strip()]
        return [str(c).strip() for c in present]  # (c != c: NaN, an empty cell of a pandas-written file)
    text = _field(row, "option", where)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: field 'option' must be a non-empty string, got {text!r}")
    pieces = _OPTION_SPLIT_RE.split(text.strip())
    letters, texts = pieces[1::2], [t.strip().rstrip(";").strip() for t in pieces[2::2]]
    if pieces[0].strip() or letters != list(WEMATH_LETTERS[: len(letters)]) or len(letters) < 2:
        raise DataError(f"{where}: field 'option' is not a list of lettered options 'A. ...; B. ...': {text!r}")
    return texts


def choices_question(question: str, options: list[str]) -> str:
    """A question with its options listed one per line as ``A. text``."""
    listed = "\n".join(f"{letter}. {text}" for letter, text in zip(string.ascii_uppercase, options, strict=False))
    return f"{question}\nOptions:\n{listed}"


def _image_field(row: dict[str, Any]) -> str:
    """``image`` (VLMEvalKit's base64 cell) when the row has one, else ``image_path`` (the hub's image,
    or a path relative to the data)."""
    return "image" if row.get("image") not in (None, "") else "image_path"


def wemath_sample_id(group: Any, key: Any) -> str:
    """A We-Math problem's sample id: its group ``ID`` and the part of the ``key`` after the last ``_``
    (``2steps_1`` + ``2steps_multi`` -> ``2steps_1-multi``); ``ID`` alone is shared by a group."""
    return f"{str(group).strip()}-{str(key).strip().rsplit('_', 1)[-1]}"


def wemath_sample(row: dict[str, Any], base_dir: str | Path | None = None, *, where: str = "wemath row") -> Sample:
    """One We-Math row (hub schema, the GitHub ``testmini.json`` or VLMEvalKit's TSV) as a :class:`Sample`.

    ``id`` is ``<ID>-<step>`` (``2steps_1-1``, ``2steps_1-multi``): ``ID`` names the problem group,
    ``key`` the part (``2steps_1``, ``2steps_2``, ``2steps_multi``); both, and the knowledge concept,
    go to ``meta`` for the four-dimensional metrics. ``options`` holds the option texts, ``answer``
    the gold letter.
    """
    group = str(_field(row, "ID", where)).strip()
    where = f"{where} (ID={group})"
    key = str(_field(row, "key", where)).strip()
    match = _WEMATH_KEY_RE.fullmatch(key)
    if not group or match is None:
        raise DataError(f"{where}: field 'key' must look like '2steps_1', '3steps_multi', got {key!r}")
    options = wemath_options(row, where)
    image_field = _image_field(row)
    image_value = _field(row, image_field, where)
    return Sample(
        id=wemath_sample_id(group, key),
        question=choices_question(_text(row, "question", where), options),
        images=[to_image(image_value, base_dir, where=f"{where} field {image_field!r}")],
        answer=_letter(row, ("answer",), WEMATH_LETTERS[: len(options)], where),
        options=options,
        task="wemath",
        meta={"group": group, "step": key, "knowledge_concept": row.get("knowledge concept"),
              "question_number": row.get("question number"), "raw_question": row.get("question")},
    )


def _archive_image(value: Any, base_dir: str | Path | None, where: str) -> Any:
    """A relative image path that is not a file under ``base_dir`` but a member of its ``images.zip``
    (the VisuLogic hub layout) becomes that member's bytes; anything else is returned as it is."""
    if not isinstance(value, str) or base_dir is None or (Path(base_dir) / value).exists():
        return value
    archive = Path(base_dir) / "images.zip"
    if not archive.is_file():
        return value
    member = value.strip().removeprefix("./")
    with zipfile.ZipFile(archive) as zf:
        try:
            return zf.read(member)
        except KeyError:
            raise DataError(f"{where}: image {member!r} is neither a file under {base_dir} nor in {archive}") from None


def visulogic_sample(
    row: dict[str, Any], base_dir: str | Path | None = None, *, index: int = 0, where: str = "visulogic row"
) -> Sample:
    """One VisuLogic row (hub ``data.jsonl`` with ``images.zip``, or VLMEvalKit's TSV) as a :class:`Sample`.

    The four choices are drawn in the image; ``answer`` is the gold letter (hub ``label``, TSV
    ``answer``), ``meta["category"]`` the reasoning category (hub ``tag``, TSV ``category``).
    """
    row_id = str(row.get("id", row.get("index", index)))
    where = f"{where} (id={row_id})"
    question = _text(row, "question", where)
    category = row.get("tag", row.get("category"))
    if not isinstance(category, str) or not category.strip():
        raise DataError(f"{where}: field 'tag' (the reasoning category) must be a non-empty string, got {category!r}")
    image_field = _image_field(row)
    value = _archive_image(_field(row, image_field, where), base_dir, f"{where} field {image_field!r}")
    return Sample(
        id=row_id,
        question=mathvision_question(question, list(VISULOGIC_LETTERS)),
        images=[to_image(value, base_dir, where=f"{where} field {image_field!r}")],
        answer=_letter(row, ("label", "answer"), VISULOGIC_LETTERS, where),
        options=list(VISULOGIC_LETTERS),
        task="visulogic",
        meta={"category": category.strip(), "raw_question": question},
    )


def visulogic_local(source: str, local_hint: str = "") -> str:
    """A local folder for a VisuLogic source: a hub id is downloaded (``data.jsonl`` and ``images.zip``,
    into the hub cache); a local path is returned as it is. A hub that cannot serve it is a
    :class:`DataUnavailable` ending in ``local_hint``, within seconds."""
    if Path(source).expanduser().exists() or "/" not in source or source.startswith((".", "/", "~")):
        return source  # local (or not a hub id: the loader says the path does not exist)
    from huggingface_hub import snapshot_download

    from vthinker_plugins import hub

    hint = f"; {local_hint}" if local_hint else ""
    reason = hub.unreachable_reason()
    if reason is not None:
        raise DataUnavailable(f"cannot reach the Hugging Face hub to download {source}: {reason}{hint}")
    try:
        return snapshot_download(repo_id=source, repo_type="dataset", allow_patterns=list(VISULOGIC_FILES))
    except Exception as exc:  # noqa: BLE001 - offline and not cached, not on the hub, connection lost
        mode = " (offline mode is on and it is not in the local cache)" if hub.offline() else ""
        raise DataUnavailable(f"cannot download {source} from the Hugging Face hub{mode}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{hint}") from None


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
    if {"ID", "key", "question", "answer"} <= cols and {"option", "A"} & cols:
        return "wemath"
    if {"question", "label", "tag", "image_path"} <= cols:
        return "visulogic"
    if "question" in cols and ({"image", "images"} & cols):
        return "generic"
    raise DataError(f"cannot tell the benchmark format from the columns {sorted(cols)}; expected VTBench, "
                    "MathVision, We-Math, VisuLogic, or question + image(s) [+ answer, options, id, task]")


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
    hint = local_copy_hint(data_env(name_or_path))
    if name_or_path in BENCHMARKS and benchmark_format(name_or_path) == "visulogic":
        source = visulogic_local(source, local_hint=hint)
        split = None if Path(source).expanduser().exists() else split
    rows = load_rows(source, split, local_hint=hint)
    if name_or_path in BENCHMARKS:
        fmt = benchmark_format(name_or_path)
        columns = set(rows.column_names)
        missing = sorted(set(REQUIRED_COLUMNS[fmt]) - columns)
        missing += [" or ".join(names) for names in ONE_OF_COLUMNS.get(fmt, ()) if not set(names) & columns]
        if missing:
            raise DataError(f"{source}: missing column(s) {missing} for benchmark {name_or_path!r} "
                            f"(columns: {sorted(rows.column_names)})")
    else:
        fmt = detect_format(rows.column_names)
    base = _base_dir(source)
    locate = row_locator(source, split)
    # The tasks a source holds are known for VTBench (all three, or the one asked for) and the one-task formats.
    known = {"vtbench": {task} if task else {t[0] for t in VTBENCH_TASKS}, "mathvision": {"mathvision"},
             "wemath": {"wemath"}, "visulogic": {"visulogic"}}.get(fmt)
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
        elif fmt == "wemath":
            samples = [wemath_sample(row, base, where=where)]
        elif fmt == "visulogic":
            samples = [visulogic_sample(row, base, index=i, where=where)]
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
            ``vtbench-reasoning``, ``mathvision``, ``mathvision-testmini``, ``wemath``,
            ``visulogic``, or a local file/folder whose format is detected from its columns.
        data: local copy of a named benchmark (file, folder or ``save_to_disk`` folder);
            default: the hub id.
        split: override the default split (``train`` for VTBench and VisuLogic, ``test``/``testmini``
            for MathVision, ``testmini`` for We-Math).
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
