"""``vthinker convert perception|interaction``: hub or local data -> LlamaFactory sharegpt data.

The output folder is LlamaFactory's ``dataset_dir`` (shards, images, a ``dataset_info.json`` entry);
re-running resumes, and every excluded row is listed with its reason. ``--cutoff-len N --tokenizer
CKPT`` also excludes interaction samples LlamaFactory would truncate through their image tokens
(:mod:`vthinker_plugins.data.lengths`).

Examples and details: docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vthinker_plugins.data import interaction, lengths, perception
from vthinker_plugins.data.sharegpt import convert
from vthinker_plugins.data.sources import DataError, load_rows

REQUIRED = {
    "interaction": ("id", "question", "image", "edited_image", "CoT_with_code"),
    "perception": ("id", "image", "question", "answer"),
}
DEFAULT_NAMES = {"interaction": "v_interaction", "perception": "v_perception"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("perception", "interaction"), help="which data set the source holds")
    parser.add_argument("--source", required=True,
                        help=f"hub id ({interaction.HUB_ID}, {perception.HUB_ID}), local parquet/jsonl file or "
                        "folder, or a save_to_disk folder")
    parser.add_argument("--split", default=None,
                        help="comma-separated splits (hub default: all of them, e.g. train_part1..train_part25)")
    parser.add_argument("--out", required=True, help="output folder (LlamaFactory dataset_dir)")
    parser.add_argument("--name", default=None, help="dataset name in dataset_info.json")
    parser.add_argument("--limit", type=int, default=None, help="convert at most this many rows")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes")
    parser.add_argument("--shard-size", type=int, default=1000, help="rows per output shard (the unit of resuming)")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="shard file type")
    parser.add_argument("--overwrite", action="store_true", help="discard an earlier conversion of this name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("interaction")
    group.add_argument("--verify", action="store_true",
                       help="re-run each row's tool_code in the sandbox and compare with edited_image")
    group.add_argument("--verify-tolerance", type=float, default=0.03,
                       help="largest mean absolute pixel difference (0-1) accepted by --verify")
    group.add_argument("--verify-timeout", type=float, default=None, help="seconds per tool-code run")
    group.add_argument("--system-prompt-file", default=None, help="system prompt text (default: the project's)")
    group.add_argument("--user-prompt-file", default=None, help="user template with {images} and {question}")
    group.add_argument("--cutoff-len", type=int, default=None,
                       help="exclude samples longer than this many tokens (text + image tokens, as LlamaFactory "
                            "counts them; keep equal to cutoff_len in the YAML): LlamaFactory would truncate them "
                            "through their image tokens and training would crash. Needs --tokenizer")
    group.add_argument("--tokenizer", default=None,
                       help="checkpoint (folder or hub id) whose tokenizer and image processor count the tokens: "
                            "the model_name_or_path you train")
    group.add_argument("--image-max-pixels", type=int, default=lengths.LF_IMAGE_MAX_PIXELS,
                       help="image_max_pixels of the YAML, for counting image tokens")
    group.add_argument("--image-min-pixels", type=int, default=lengths.LF_IMAGE_MIN_PIXELS,
                       help="image_min_pixels of the YAML (LlamaFactory's default unless set there)")
    group = parser.add_argument_group("perception")
    group.add_argument("--max-pixels", type=int, default=perception.DEFAULT_MAX_PIXELS,
                       help="exclude images larger than this (keep equal to image_max_pixels in the YAML)")


def _count_rows(source: str, split: str | None, dataset: Any) -> int | None:
    """Best-effort row count for the progress bar, without reading the data."""
    try:
        info = getattr(dataset, "info", None)
        if info is not None and info.splits and split in info.splits:
            return int(info.splits[split].num_examples)
        path = Path(source)
        if path.exists():
            import pyarrow.parquet as pq

            from vthinker_plugins.data.sources import _data_files

            builder, files = _data_files(path, split)
            if builder == "parquet":
                return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:  # noqa: BLE001 - only the progress bar depends on it
        return None
    return None


def open_splits(
    source: str, splits: list[str | None], kind: str
) -> tuple[list[tuple[str, Iterable[dict[str, Any]]]], int | None, str | None]:
    """Stream each split with images left encoded (``{"bytes", "path"}``), checking the columns first."""
    import datasets

    image_columns = interaction.IMAGE_COLUMNS if kind == "interaction" else perception.IMAGE_COLUMNS
    local = Path(source).expanduser().exists()
    base_dir = None
    if local:
        path = Path(source).expanduser().resolve()
        base_dir = str(path if path.is_dir() else path.parent)
    streams: list[tuple[str, Iterable[dict[str, Any]]]] = []
    total: int | None = 0
    for split in splits:
        name = split or "train"
        parquet = _local_parquet(source, split)
        if parquet:  # the common local case, read with pyarrow directly: several times faster than datasets
            _check_parquet_columns(parquet, source, split, kind)
            count = sum(_parquet_rows(f) for f in parquet)
            total = None if total is None else total + count
            streams.append((name, _parquet_rows_iter(parquet)))
            continue
        ds = load_rows(source, split, streaming=True)
        features = ds.features
        if features is not None:
            missing = [c for c in REQUIRED[kind] if c not in features]
            if missing:
                raise DataError(f"{source} (split {split}): missing column(s) {missing}; found {list(features)}")
            for column in image_columns:
                if isinstance(features.get(column), datasets.Image):
                    ds = ds.cast_column(column, datasets.Image(decode=False))
        count = _count_rows(source, split, ds)
        total = None if total is None or count is None else total + count
        streams.append((name, _checked(ds, source, split, kind)))
    return streams, total, base_dir


def _local_parquet(source: str, split: str | None) -> list[str]:
    """The parquet files of a local source (not a save_to_disk folder), else []."""
    from vthinker_plugins.data.sources import _data_files

    path = Path(source).expanduser()
    if not path.exists() or (path.is_dir() and any((path / f).exists() for f in ("dataset_info.json",
                                                                                  "dataset_dict.json"))):
        return []
    builder, files = _data_files(path, split)
    return files if builder == "parquet" else []


def _parquet_rows(file: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(file).metadata.num_rows


def _check_parquet_columns(files: list[str], source: str, split: str | None, kind: str) -> None:
    import pyarrow.parquet as pq

    for file in files:
        names = pq.ParquetFile(file).schema_arrow.names
        missing = [c for c in REQUIRED[kind] if c not in names]
        if missing:
            raise DataError(f"{file} (source {source}, split {split}): missing column(s) {missing}; found {names}")


def _parquet_rows_iter(files: list[str], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Rows as dicts, images as the ``{"bytes", "path"}`` structs the hub stores; one batch in memory."""
    import pyarrow.parquet as pq

    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()


def _checked(rows: Iterable[dict[str, Any]], source: str, split: str | None, kind: str) -> Iterator[dict[str, Any]]:
    """Rows of schema-less sources (jsonl) are checked as they come."""
    for i, row in enumerate(rows):
        if i == 0:
            missing = [c for c in REQUIRED[kind] if c not in row]
            if missing:
                raise DataError(f"{source} (split {split}) row 0: missing column(s) {missing}; found {list(row)}")
        yield row


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    kind = args.kind
    name = args.name or DEFAULT_NAMES[kind]
    hub_splits = interaction.HUB_SPLITS if kind == "interaction" else perception.HUB_SPLITS
    if args.split:
        splits: list[str | None] = [s.strip() for s in args.split.split(",") if s.strip()]
    elif Path(args.source).expanduser().exists():
        splits = [None]
    else:
        splits = list(hub_splits)
    counter, extra = _length_check(args, kind)
    streams, total, base_dir = open_splits(args.source, splits, kind)
    if kind == "interaction":
        from vthinker_plugins.protocol import PromptSet

        prompts = PromptSet.from_files(args.system_prompt_file, args.user_prompt_file)
        converter: Any = interaction.InteractionConverter(
            prompts=prompts, base_dir=base_dir, verify=args.verify,
            tolerance=args.verify_tolerance, timeout=args.verify_timeout,
            lengths=counter, cutoff_len=args.cutoff_len,
        )
        options = {"verify": args.verify, "verify_tolerance": args.verify_tolerance, "system": prompts.system,
                   "user_template": prompts.user_template}
        if counter is not None:  # only then: earlier conversions without the check still resume
            options.update(extra["length_check"])
    else:
        converter = perception.PerceptionConverter(max_pixels=args.max_pixels, base_dir=base_dir)
        options = {"max_pixels": args.max_pixels}
    summary = convert(
        streams, converter, args.out, name,
        manifest={"kind": kind, "source": str(args.source), "splits": splits, **options},
        shard_size=args.shard_size, num_proc=args.num_proc, fmt=args.format, limit=args.limit,
        overwrite=args.overwrite, progress=not args.no_progress, total=total, summary_extra=extra,
    )
    print_summary(summary)
    return 0


#: Said once in the summary of an interaction conversion that did not check sample lengths.
LENGTHS_NOT_CHECKED = (
    "sample lengths were not checked: LlamaFactory truncates a sample longer than cutoff_len through its "
    "image tokens and training then crashes (image features and image tokens do not match). To exclude such "
    "samples (reason too_long), convert with --cutoff-len 15000 --tokenizer <the checkpoint you train> "
    "[--image-max-pixels 4194304] (the cutoff_len and image_max_pixels of your YAML)."
)


def _length_check(args: argparse.Namespace, kind: str) -> tuple[lengths.LengthCounter | None, dict[str, Any]]:
    """The token counter of ``--cutoff-len``/``--tokenizer`` (loaded now, so a bad checkpoint fails before
    any conversion) and what the summary says about lengths."""
    if (args.cutoff_len is None) != (args.tokenizer is None):
        raise DataError("--cutoff-len and --tokenizer go together: the tokenizer counts, the cutoff decides")
    if args.cutoff_len is None:
        return None, ({"length_check": None, "note": LENGTHS_NOT_CHECKED} if kind == "interaction" else {})
    if kind != "interaction":
        raise DataError("--cutoff-len is checked for interaction (stage-2) data only")
    if args.cutoff_len < 1:
        raise DataError(f"--cutoff-len {args.cutoff_len}: must be positive")
    counter = lengths.LengthCounter(args.tokenizer, args.image_max_pixels, args.image_min_pixels)
    try:
        counter.image_tokens(28, 28)
    except Exception as exc:  # any loading failure: a message naming the checkpoint
        raise DataError(f"--tokenizer {args.tokenizer}: cannot load its tokenizer and image processor "
                        f"({type(exc).__name__}: {exc})") from exc
    check = {"cutoff_len": args.cutoff_len, "tokenizer": str(args.tokenizer),
             "image_max_pixels": args.image_max_pixels, "image_min_pixels": args.image_min_pixels}
    return counter, {"length_check": check}


def print_summary(summary: dict[str, Any]) -> None:
    """A short table: rows read, written, excluded per reason."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency; plain JSON is the fallback
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"converted {summary['name']}", show_header=True)
    table.add_column("")
    table.add_column("rows", justify="right")
    table.add_row("read", str(summary["rows"]))
    table.add_row("written", str(summary["written"]))
    table.add_row("excluded", str(summary["excluded"]))
    for reason, n in summary["excluded_by_reason"].items():
        table.add_row(f"  {reason}", str(n))
    console = Console()
    console.print(table)
    console.print(f"data: {summary['output']}\nexcluded rows (id, reason): {summary['excluded_file']}")
    if summary.get("note"):
        console.print(f"note: {summary['note']}", markup=False)
