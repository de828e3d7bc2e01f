"""Write converted samples as LlamaFactory sharegpt data: shards + image files + ``dataset_info.json``.

The input is streamed in shards of ``shard_size`` rows, converted in ``num_proc`` worker processes
and written as they finish, so memory does not grow with the input and an interrupted run resumes
where it stopped.

Output layout: docs/data.md.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vthinker_plugins.data.interaction import ConvertedRow, RowExcluded
from vthinker_plugins.data.sources import DataError
from vthinker_plugins.runs.files import atomic_write

#: A function that converts a list of raw rows; each result is a sample or the reason it was excluded.
BatchConverter = Callable[[list[dict[str, Any]]], list["ConvertedRow | RowExcluded"]]

#: Exclusion reason of every row of a shard whose converter raised; such shards are redone on resume.
CONVERTER_ERROR = "converter_error"

SHAREGPT_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "observation",
    "system_tag": "system",
}


def dataset_info_entry(name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry for a dataset written by :func:`convert`."""
    return {
        "file_name": name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": dict(SHAREGPT_TAGS),
    }


def update_dataset_info(out_dir: str | Path, name: str, entry: dict[str, Any] | None = None) -> Path:
    """Add (or replace) ``name`` in ``out_dir/dataset_info.json``, keeping other entries."""
    path = Path(out_dir) / "dataset_info.json"
    info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    info[name] = entry or dataset_info_entry(name)
    atomic_write(path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return path


@dataclass
class ShardReport:
    shard: str
    n_rows: int
    n_written: int
    excluded: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


@dataclass
class ShardJob:
    """Everything a worker needs to convert and write one shard (picklable)."""

    out_dir: str
    name: str
    shard: str
    first_row: int  # index of the shard's first row in its split (for messages)
    fmt: str  # "jsonl" or "parquet"


def _records(job: ShardJob, results: list[ConvertedRow | RowExcluded], rows: list[dict[str, Any]]):
    image_dir = Path(job.out_dir) / "images" / job.name / job.shard
    records: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        if isinstance(result, RowExcluded):
            excluded.append(
                {
                    "id": None if row.get("id") is None else str(row.get("id")),
                    "row": job.first_row + i,
                    "shard": job.shard,
                    "reason": result.reason,
                    "detail": result.detail,
                }
            )
            continue
        paths = []
        for k, blob in enumerate(result.images):
            image_dir.mkdir(parents=True, exist_ok=True)
            # Named by position, not id: ids need not be unique or file-name safe.
            rel = f"images/{job.name}/{job.shard}/{i:05d}_{k}.{blob.ext}"
            (Path(job.out_dir) / rel).write_bytes(blob.data)
            paths.append(rel)
        records.append({"id": result.id, "messages": result.messages, "images": paths, **result.extra})
    return records, excluded


def run_shard(job: ShardJob, rows: list[dict[str, Any]], converter: BatchConverter) -> ShardReport:
    """Convert and write one shard; the report is written last, so a crash leaves the shard undone."""
    try:
        results = converter(rows)
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the other shards; every row gets the reason
        results = [RowExcluded(CONVERTER_ERROR, f"{type(exc).__name__}: {exc}") for _ in rows]
    records, excluded = _records(job, results, rows)
    data_path = Path(job.out_dir) / job.name / f"{job.shard}.{job.fmt}"
    if records:
        if job.fmt == "jsonl":
            atomic_write(data_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            tmp = data_path.with_name(data_path.name + ".tmp")
            pq.write_table(pa.Table.from_pylist(records), tmp)
            os.replace(tmp, data_path)
    elif data_path.exists():
        data_path.unlink()
    report = ShardReport(job.shard, len(rows), len(records), excluded)
    atomic_write(Path(job.out_dir) / "reports" / job.name / f"{job.shard}.json", report.to_json())
    return report


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _done_report(out_dir: Path, name: str, shard: str, n_rows: int) -> ShardReport | None:
    path = out_dir / "reports" / name / f"{shard}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if any(e.get("reason") == CONVERTER_ERROR for e in data.get("excluded") or []):
        return None  # the converter itself fell over (not a property of the rows): convert it again
    return ShardReport(**data) if data.get("n_rows") == n_rows else None


def prepare_output(out_dir: str | Path, name: str, manifest: dict[str, Any], overwrite: bool = False) -> Path:
    """Create the folders; refuse to mix a resumed run with different options."""
    out = Path(out_dir)
    reports = out / "reports" / name
    manifest_path = reports / "manifest.json"
    if overwrite:
        for sub in (out / name, out / "images" / name, reports):
            shutil.rmtree(sub, ignore_errors=True)
    elif manifest_path.exists():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(manifest)):
            diff = {k: (old.get(k), manifest.get(k)) for k in set(old) | set(manifest) if old.get(k) != manifest.get(k)}
            raise DataError(
                f"{out / name} holds a conversion with other options {diff}; "
                "use --overwrite to start over or the same options to resume"
            )
    (out / name).mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    atomic_write(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))
    return out


def convert(
    splits: Iterable[tuple[str, Iterable[dict[str, Any]]]],
    converter: BatchConverter,
    out_dir: str | Path,
    name: str,
    *,
    manifest: dict[str, Any] | None = None,
    shard_size: int = 1000,
    num_proc: int = 1,
    fmt: str = "jsonl",
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
    summary_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Convert ``(split_name, rows)`` streams into sharegpt shards; returns the summary.

    ``limit`` caps the rows read over all splits. Shards already written by an earlier run
    with the same ``manifest`` are skipped (their reports are reused). ``summary_extra`` is
    added to the summary (e.g. whether sample lengths were checked).
    """
    from tqdm.auto import tqdm

    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    manifest = {**(manifest or {}), "name": name, "shard_size": shard_size, "format": fmt}
    out = prepare_output(out_dir, name, manifest, overwrite)
    reports: list[ShardReport] = []
    bar = tqdm(total=total if limit is None else min(limit, total or limit), unit="row", disable=not progress,
               desc=f"convert {name}")
    pool = ProcessPoolExecutor(num_proc, mp_context=get_context("spawn")) if num_proc > 1 else None
    pending: set[Future] = set()

    def collect(futures: set[Future]) -> None:
        for fut in futures:
            report = fut.result()
            reports.append(report)
            bar.update(report.n_rows)

    try:
        remaining = limit
        for split, rows in splits:
            if remaining is not None and remaining <= 0:
                break
            if remaining is not None:
                rows = _take(rows, remaining)
            for index, chunk in enumerate(_chunks(rows, shard_size)):
                if remaining is not None:
                    remaining -= len(chunk)
                shard = f"{split}-{index:05d}"
                done = _done_report(out, name, shard, len(chunk))
                if done is not None:  # resumed run: this shard was written before
                    reports.append(done)
                    bar.update(done.n_rows)
                    continue
                job = ShardJob(str(out), name, shard, index * shard_size, fmt)
                if pool is None:
                    collect_one = run_shard(job, chunk, converter)
                    reports.append(collect_one)
                    bar.update(collect_one.n_rows)
                    continue
                pending.add(pool.submit(run_shard, job, chunk, converter))
                if len(pending) >= 2 * num_proc:  # bounded look-ahead keeps memory flat
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(finished)
        if pending:
            finished, pending = wait(pending)
            collect(finished)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _remove_stale_shards(out, name, {r.shard for r in reports})
    update_dataset_info(out, name)
    return write_summary(out, name, reports, summary_extra)


def _remove_stale_shards(out: Path, name: str, keep: set[str]) -> None:
    """Drop shards an earlier, longer run wrote (e.g. with a larger --limit) so the folder holds this run only."""
    for path in (out / name).glob("*"):
        if path.suffix in (".jsonl", ".parquet") and path.stem not in keep:
            path.unlink()
    for path in (out / "reports" / name).glob("*.json"):
        if path.stem not in keep and path.name not in ("manifest.json", "summary.json"):
            path.unlink()
    for path in (out / "images" / name).glob("*"):
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path)


def _take(rows: Iterable[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row


def write_summary(
    out: Path, name: str, reports: list[ShardReport], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Merge the shard reports into ``excluded.jsonl`` and ``summary.json`` (plus ``extra``)."""
    reports = sorted(reports, key=lambda r: r.shard)
    reasons = Counter(e["reason"] for r in reports for e in r.excluded)
    summary = {
        "name": name,
        "rows": sum(r.n_rows for r in reports),
        "written": sum(r.n_written for r in reports),
        "excluded": sum(len(r.excluded) for r in reports),
        "excluded_by_reason": dict(reasons.most_common()),
        "shards": len(reports),
        "output": str(out / name),
        "excluded_file": str(out / "reports" / name / "excluded.jsonl"),
        **(extra or {}),
    }
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for r in reports for e in r.excluded)
    atomic_write(out / "reports" / name / "excluded.jsonl", lines)
    atomic_write(out / "reports" / name / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
