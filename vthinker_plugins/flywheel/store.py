"""A flywheel run's folder: ``run.json`` (what planned the tasks), ``records.jsonl`` (one line per
finished task, appended and fsync'ed as each finishes) and ``images/<task>/`` (what every attempt drew).

A task's images are written before its line, so a kill leaves either a complete record or none
(a line cut short is dropped and the file repaired when the run is opened again); the task is then
done again and its image folder replaced. The latest line of an id wins; :meth:`RunStore.compact`
rewrites the file with one line per id, atomically.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vthinker_plugins.runs import files

RUN_FILE, RECORDS_FILE, IMAGES_DIR = "run.json", "records.jsonl", "images"
#: run.json keys that may change between runs into the same folder: they add or drop tasks, or say
#: where the models and the graph file are reached, and leave what an existing task produced valid
#: (the graph's content is ``graph_digest``).
MUTABLE_KEYS = ("num", "expand", "max_level", "generator_url", "checker_url", "graph")


class StoreError(ValueError):
    """A run folder that cannot be resumed; the message says why and what to do."""


def _check_record(record: Any) -> str | None:
    if not isinstance(record, dict) or "id" not in record or "status" not in record:
        return "a record needs 'id' and 'status'"
    return None


def read_records(path: Path) -> files.JsonlRead:
    """The lines of ``records.jsonl`` (a last line a kill cut short is dropped)."""
    return files.read_jsonl(path, _check_record, error=StoreError, what="record")


class RunStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.records_path = self.folder / RECORDS_FILE
        self.images_dir = self.folder / IMAGES_DIR

    # ------------------------------------------------------------------ identity

    def open(self, identity: dict[str, Any], overwrite: bool = False) -> dict[str, dict[str, Any]]:
        """Create or resume the run; returns the finished records by id. Refuses a folder whose
        ``run.json`` planned other tasks (another seed, graph, model, ...)."""
        if overwrite:
            for name in (RUN_FILE, RECORDS_FILE, IMAGES_DIR):
                target = self.folder / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        run_file = self.folder / RUN_FILE
        if run_file.exists() and self.records_path.exists():
            earlier = json.loads(run_file.read_text(encoding="utf-8"))
            details = files.changed_settings(earlier, identity, [k for k in set(identity) | set(earlier)
                                                           if k not in MUTABLE_KEYS])
            if details:
                raise StoreError(f"{self.folder} holds a flywheel run planned otherwise ({details}); "
                                 "use another --out or --overwrite")
        files.atomic_write(run_file, json.dumps(identity, indent=2, ensure_ascii=False) + "\n")
        found = read_records(self.records_path)
        records = found.latest()
        if found.needs_repair:
            self.compact(records)
        return records

    def identity(self) -> dict[str, Any]:
        return json.loads((self.folder / RUN_FILE).read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ records

    def image_folder(self, task_id: str) -> Path:
        return self.images_dir / files.safe_name(task_id)

    def write(self, record: dict[str, Any], images: list[tuple[bytes | None, bytes | None]]) -> dict[str, Any]:
        """Write the attempts' images, then append the record (with their paths) durably."""
        folder = self.image_folder(record["id"])
        if folder.exists():
            shutil.rmtree(folder)  # a task done again replaces what its interrupted run drew
        rel = lambda p: p.relative_to(self.folder).as_posix()  # noqa: E731
        for k, (image, edited) in enumerate(images):
            paths: dict[str, str] = {}
            for name, data in (("image", image), ("edited_image", edited)):
                if data is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"round{k}_{name}.png"
                    path.write_bytes(data)
                    paths[name] = rel(path)
            if k < len(record.get("attempts", [])):
                record["attempts"][k]["images"] = paths
        files.append_jsonl(self.records_path, record)
        return record

    def records(self) -> dict[str, dict[str, Any]]:
        return read_records(self.records_path).latest()

    def compact(self, records: dict[str, dict[str, Any]] | None = None) -> None:
        """Rewrite ``records.jsonl`` with the latest line of each id (atomically)."""
        if records is None:
            records = self.records()
        files.write_jsonl(self.records_path, list(records.values()))

    def read_image(self, rel: str) -> bytes:
        path = self.folder / rel
        if not path.is_file():
            raise StoreError(f"{path}: image of a record is missing (referenced from {self.records_path})")
        return path.read_bytes()
