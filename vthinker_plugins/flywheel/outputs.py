"""What a flywheel run hands on: training rows in the hub schemas, a summary, and merged shards.

Accepted problems become V-Interaction-400K rows (stage 2) and, when their labelled points pass
:func:`~vthinker_plugins.flywheel.checks.point_check`, V-Perception-40K rows (stage 1); these and
``summary.json`` are rebuilt from ``records.jsonl`` when a run or merge ends. :func:`merge` joins
the shard folders of a sharded run.

Output files: docs/data.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from vthinker_plugins.flywheel.problem import Problem, hub_row
from vthinker_plugins.flywheel.store import IMAGES_DIR, MUTABLE_KEYS, RECORDS_FILE, RUN_FILE, RunStore, StoreError
from vthinker_plugins.runs.files import atomic_write

INTERACTION_DIR, PERCEPTION_DIR, SUMMARY_FILE = "interaction", "perception", "summary.json"
SHARD_RE = re.compile(r"shard-(\d+)-of-(\d+)")


def shard_folder_name(index: int, num_shards: int) -> str:
    return f"shard-{index:03d}-of-{num_shards:03d}"


def _order_key(record: dict[str, Any]) -> tuple[int, str]:
    return int((record.get("task") or {}).get("index", 0)), str(record["id"])


def ordered(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records.values(), key=_order_key)


def perception_question(names: list[str]) -> str:
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    return f"Output the pixel coordinates of point{'s' if len(names) > 1 else ''} {listed} in the image."


def _write_parts(folder: Path, rows: list[dict[str, Any]], schema: Any, shard_size: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for k, start in enumerate(range(0, len(rows), shard_size)):
        path = folder / f"part-{k:05d}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(pa.Table.from_pylist(rows[start:start + shard_size], schema=schema), tmp)
        os.replace(tmp, path)
        keep.add(path.name)
    for stale in folder.glob("part-*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    return len(rows)


def export(store: RunStore, records: dict[str, dict[str, Any]], shard_size: int = 1000) -> dict[str, Any]:
    """Write the interaction and perception rows of the accepted records; returns their counts and folders."""
    from vthinker_plugins.data.interaction import hub_features as interaction_features
    from vthinker_plugins.data.perception import format_points
    from vthinker_plugins.data.perception import hub_features as perception_features

    interaction, perception = [], []
    for record in ordered(records):
        if record["status"] != "accepted":
            continue
        images = (record.get("attempts") or [{}])[-1].get("images") or {}
        if "image" not in images or "edited_image" not in images:
            raise StoreError(f"{store.records_path}: accepted record {record['id']} lists no images")
        problem = Problem.from_json(record["problem"])
        image = store.read_image(images["image"])
        interaction.append(hub_row(record["id"], problem, image, store.read_image(images["edited_image"])))
        if (record.get("perception") or {}).get("ok") and problem.points:
            points = {k: (round(x), round(y)) for k, (x, y) in problem.points.items()}
            perception.append({
                "id": f"{record['id']}-points", "image": {"bytes": image, "path": None},
                "question": perception_question(list(points)), "answer": format_points(points),
                "python_code": problem.image_code, "element_arrtibute": ["point"],
            })
    out = store.folder
    n_i = _write_parts(out / INTERACTION_DIR, interaction, interaction_features().arrow_schema, shard_size)
    n_p = _write_parts(out / PERCEPTION_DIR, perception, perception_features().arrow_schema, shard_size)
    return {"interaction_rows": n_i, "perception_rows": n_p, "interaction_dir": str(out / INTERACTION_DIR),
            "perception_dir": str(out / PERCEPTION_DIR)}


def summarize(records: dict[str, dict[str, Any]], identity: dict[str, Any], planned: int | None = None,
              **extra: Any) -> dict[str, Any]:
    """Counts over the records: status, rejection/error reasons, per level, strategy and domain."""
    status = Counter(r["status"] for r in records.values())
    reasons = Counter(r.get("reason") for r in records.values() if r["status"] == "rejected")
    errors = Counter(r.get("reason") for r in records.values() if r["status"] == "error")

    def table(key: Any) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for r in records.values():
            out.setdefault(str(key(r)), Counter())[r["status"]] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    accepted = [r for r in records.values() if r["status"] == "accepted"]
    return {
        "identity": identity,
        "tasks_planned": planned,
        "tasks_done": len(records),
        "complete": planned is not None and status["error"] == 0 and len(records) >= planned,
        "accepted": status["accepted"],
        "repaired": sum(1 for r in accepted if r.get("repaired")),
        "rejected": status["rejected"],
        "errors": status["error"],
        "rejected_by_reason": dict(reasons.most_common()),
        "errors_by_reason": dict(errors.most_common()),
        "by_level": table(lambda r: r.get("level")),
        "by_strategy": table(lambda r: r.get("strategy")),
        "by_domain": table(lambda r: (r.get("point_paths") or ["?"])[0].split(" > ")[0]),
        "attempts_of_accepted": dict(sorted(Counter(str(r.get("n_attempts")) for r in accepted).items())),
        "perception_rows": sum(1 for r in accepted if (r.get("perception") or {}).get("ok")),
        **extra,
    }


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def find_shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and SHARD_RE.fullmatch(p.name))


def merge(out: str | Path, shards: list[Path] | None = None, allow_incomplete: bool = False) -> dict[str, Any]:
    """Join the shard folders of one sharded run (default: ``OUT/shard-*-of-*``) into ``out``: records,
    images, hub rows, summary. Refuses shards of different runs, missing or repeated shards, and
    (unless ``allow_incomplete``) shards whose run has not finished every task."""
    out = Path(out)
    shards = sorted(shards) if shards else find_shards(out) if out.is_dir() else []
    if not shards:
        raise StoreError(f"{out}: no shard folders (shard-NNN-of-NNN) to merge")
    identities, summaries = [], []
    for shard in shards:
        for name in (RUN_FILE, RECORDS_FILE):
            if not (shard / name).exists():
                raise StoreError(f"{shard}: no {name}; is it a flywheel shard folder?")
        identities.append(json.loads((shard / RUN_FILE).read_text(encoding="utf-8")))
        summary_path = shard / SUMMARY_FILE
        summaries.append(json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None)
    first = identities[0]
    num_shards = int(first.get("num_shards", 1))
    for shard, ident in zip(shards, identities, strict=True):
        diff = sorted(k for k in set(first) | set(ident)
                      if k not in (*MUTABLE_KEYS, "shard_index") and ident.get(k) != first.get(k))
        if diff:
            raise StoreError(f"{shard} is a shard of another run than {shards[0]} (differs in {', '.join(diff)})")
        for key in ("num", "expand", "max_level"):
            if ident.get(key) != first.get(key):
                raise StoreError(f"{shard}: {key} {ident.get(key)!r} differs from {shards[0]}'s {first.get(key)!r}; "
                                 "finish every shard with the same settings before merging")
    indices = Counter(int(i.get("shard_index", 0)) for i in identities)
    repeated = sorted(i for i, n in indices.items() if n > 1)
    missing = sorted(set(range(num_shards)) - set(indices))
    if repeated:
        raise StoreError(f"shard index(es) {repeated} given more than once")
    if missing and not allow_incomplete:
        raise StoreError(f"shard(s) {missing} of {num_shards} are missing; run them first (or --allow-incomplete)")
    unfinished = [str(s) for s, summ in zip(shards, summaries, strict=True) if not (summ or {}).get("complete")]
    if unfinished and not allow_incomplete:
        raise StoreError(f"shard(s) not finished (tasks left or endpoint errors): {', '.join(unfinished)}; "
                         "re-run them first (or --allow-incomplete)")

    merged = RunStore(out)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    if (out / IMAGES_DIR).exists():
        shutil.rmtree(out / IMAGES_DIR)
    for shard in shards:
        store = RunStore(shard)
        for rid, record in store.records().items():
            if rid in records:
                raise StoreError(f"record {rid} occurs in two shards (second: {shard})")
            src = store.image_folder(rid)
            if src.exists():
                shutil.copytree(src, merged.image_folder(rid))
            records[rid] = record  # image paths are relative to the run folder: the same under ``out``
    identity = {**first, "shard_index": None, "merged_from": [str(s) for s in shards]}
    write_json(out / RUN_FILE, identity)
    merged.compact({r["id"]: r for r in ordered(records)})
    planned = sum(int((s or {}).get("tasks_planned") or 0) for s in summaries)
    counts = export(merged, records)
    summary = summarize(records, identity, planned if not missing else None, outputs=counts,
                        shards=[{"folder": str(s), "complete": bool((m or {}).get("complete"))}
                                for s, m in zip(shards, summaries, strict=True)])
    write_json(out / SUMMARY_FILE, summary)
    return summary
