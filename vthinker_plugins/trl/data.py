"""RL data for the GRPO trainer, from wherever it lives, in the shape TRL expects.

Rows in the public RL sets' columns become ``prompt`` (built with the project's
:class:`~vthinker_plugins.protocol.PromptSet`, so it equals the evaluation prompt), ``images``,
``answer`` and ``question``, decoded lazily; a bad row raises :class:`DataError`.
Accepted columns: docs/training.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vthinker_plugins.chat import prompt_messages
from vthinker_plugins.data.sources import DataError, load_rows, to_image
from vthinker_plugins.protocol import DEFAULT_PROMPTS, PromptSet

QUESTION_COLUMNS = ("question", "prompt")
IMAGE_COLUMNS = ("images", "image")
ANSWER_COLUMNS = ("answer", "solution")
ROW_COLUMN = "__row__"


def _first_present(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _text(value: Any, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: empty")
    if isinstance(value, (list, tuple)):
        raise DataError(f"{where}: expected text, got a list")
    return str(value)


def convert_row(
    row: dict[str, Any],
    *,
    where: str,
    prompts: PromptSet = DEFAULT_PROMPTS,
    image_base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """One raw row -> ``prompt``, ``images``, ``answer``, ``question``, ``options`` (+ the other columns)."""
    columns = list(row)
    image_col = _first_present(columns, IMAGE_COLUMNS)
    if image_col is None:
        raise DataError(f"{where}: no image column (expected one of {IMAGE_COLUMNS})")
    raw_images = row[image_col]
    if image_col == "image" or not isinstance(raw_images, (list, tuple)):
        raw_images = [raw_images]
    if not raw_images:
        raise DataError(f"{where}, field {image_col!r}: no image")
    images = [to_image(v, image_base_dir, where=f"{where}, field {image_col!r}[{i}]") for i, v in enumerate(raw_images)]

    # MathVision rows carry both: ``answer`` is the final answer, ``solution`` (often empty) a worked
    # explanation. Rows in TRL's shape have only ``solution``. Take the first filled one.
    answer_col = next((c for c in ANSWER_COLUMNS if row.get(c) not in (None, "")), None)
    if answer_col is None:
        raise DataError(f"{where}: no reference answer (fields {ANSWER_COLUMNS} missing or empty)")
    answer = _text(row[answer_col], f"{where}, field {answer_col!r}")

    options = row.get("options") or []
    if not isinstance(options, (list, tuple)):
        raise DataError(f"{where}, field 'options': expected a list, got {type(options).__name__}")

    prompt = row.get("prompt")
    if isinstance(prompt, list):  # already conversational: keep, but it must carry one image slot per image
        messages = prompt
        slots = sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, dict) and part.get("type") == "image"
        )
        if slots != len(images):
            raise DataError(f"{where}, field 'prompt': {slots} image slots for {len(images)} images")
        question = row.get("question") or ""
    else:
        question_col = "question" if row.get("question") not in (None, "") else "prompt"
        if question_col not in row:
            raise DataError(f"{where}: no question column (expected one of {QUESTION_COLUMNS})")
        question = _text(row[question_col], f"{where}, field {question_col!r}")
        messages = prompt_messages(prompts.system, prompts.user_prompt(question, len(images)))

    out = {k: v for k, v in row.items() if k not in (image_col, "prompt", ROW_COLUMN)}
    out.update(prompt=messages, images=images, answer=answer, question=str(question), options=list(options))
    return out


def load_rl_dataset(
    source: str | Path,
    split: str | None = None,
    *,
    limit: int | None = None,
    prompts: PromptSet = DEFAULT_PROMPTS,
    image_base_dir: str | Path | None = None,
):
    """A ``datasets.Dataset`` of RL rows, decoded lazily into TRL's ``prompt``/``images`` shape.

    ``source`` is a hub id, a local parquet/jsonl file or folder, or a ``save_to_disk``
    folder (see :func:`vthinker_plugins.data.sources.load_rows`). Relative image paths
    resolve against ``image_base_dir`` (default: the folder of a local source).
    """
    dataset = load_rows(source, split)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    columns = list(dataset.column_names)
    missing = [
        f"one of {names}"
        for names in (IMAGE_COLUMNS, ANSWER_COLUMNS, QUESTION_COLUMNS)
        if _first_present(columns, names) is None
    ]
    if missing:
        raise DataError(f"{source}: missing columns: {', '.join(missing)} (has {columns})")
    if len(dataset) == 0:
        raise DataError(f"{source}: no rows")
    if image_base_dir is None and Path(source).expanduser().exists():
        path = Path(source).expanduser()
        image_base_dir = path if path.is_dir() else path.parent
    dataset = dataset.add_column(ROW_COLUMN, list(range(len(dataset))))

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        n = len(batch[ROW_COLUMN])
        rows = [
            convert_row(
                {k: v[i] for k, v in batch.items()},
                where=f"{source} row {batch[ROW_COLUMN][i]}",
                prompts=prompts,
                image_base_dir=image_base_dir,
            )
            for i in range(n)
        ]
        return {k: [r[k] for r in rows] for k in rows[0]}

    return dataset.with_transform(transform)
