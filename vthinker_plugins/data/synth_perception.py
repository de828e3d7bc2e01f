"""``vthinker synth-perception``: synthesise V-Perception-style data (figures + pixel-coordinate answers).

The output has V-Perception-40K's schema, so the stage-1 converter takes it as is. Sample ``i``
depends only on ``(seed, i)``: the data are the same for any ``--num-proc``, and an interrupted run
resumes from its finished shards.

Example and schema: docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vthinker_plugins.data.figures import LEVELS, make_figure, render
from vthinker_plugins.data.perception import format_points
from vthinker_plugins.data.sources import DataError


def make_sample(seed: int, index: int, levels: tuple[str, ...] = LEVELS) -> dict[str, Any]:
    """Sample ``index`` of the data set with ``seed``, in V-Perception's schema."""
    rng = random.Random(f"{seed}:{index}")  # string seeds hash deterministically across processes
    level = levels[index % len(levels)]
    fig = make_figure(rng, level)
    code = fig.code()
    return {
        "id": f"synth-{level}-{seed}-{index:07d}",
        "image": {"bytes": render(code), "path": None},
        "question": fig.question,
        "answer": format_points(fig.answer),
        "python_code": code,
        "element_arrtibute": fig.elements,
    }


def _features():
    from vthinker_plugins.data.perception import hub_features

    return hub_features()


def write_shard(out_dir: str, shard: int, start: int, stop: int, seed: int, levels: tuple[str, ...], schema) -> int:
    """Generate samples ``[start, stop)`` into ``data/part-<shard>.parquet``; returns the count.

    ``schema`` is the arrow schema of :func:`_features` (it carries the Hugging Face feature
    metadata, so ``image`` loads as an image); workers write with pyarrow alone, without
    paying for importing ``datasets``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [make_sample(seed, i, levels) for i in range(start, stop)]
    path = Path(out_dir) / "data" / f"part-{shard:05d}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)  # a shard exists only once complete
    return stop - start


def synthesize(
    out_dir: str | Path,
    num: int,
    seed: int = 0,
    num_proc: int = 1,
    shard_size: int = 1000,
    levels: tuple[str, ...] = LEVELS,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``num`` samples as parquet shards under ``out_dir/data``; returns that folder."""
    from tqdm.auto import tqdm

    unknown = set(levels) - set(LEVELS)
    if unknown or not levels:
        raise ValueError(f"unknown level(s) {sorted(unknown)}; choose from {LEVELS}")
    out = Path(out_dir)
    manifest = {"num": num, "seed": seed, "shard_size": shard_size, "levels": list(levels)}
    manifest_path = out / "manifest.json"
    if overwrite:
        shutil.rmtree(out / "data", ignore_errors=True)
    elif manifest_path.exists() and json.loads(manifest_path.read_text()) != manifest:
        raise DataError(f"{out} holds synthesised data with other options; use --overwrite or the same options")
    (out / "data").mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    schema = _features().arrow_schema
    shards = [(k, s, min(s + shard_size, num)) for k, s in enumerate(range(0, num, shard_size))]
    todo = [s for s in shards if not (out / "data" / f"part-{s[0]:05d}.parquet").exists()]
    bar = tqdm(total=num, initial=num - sum(b - a for _, a, b in todo), unit="sample", disable=not progress,
               desc="synth-perception")
    try:
        if num_proc <= 1:
            for k, start, stop in todo:
                bar.update(write_shard(str(out), k, start, stop, seed, levels, schema))
        else:
            with ProcessPoolExecutor(num_proc, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(write_shard, str(out), k, a, b, seed, levels, schema) for k, a, b in todo]
                for fut in as_completed(futures):
                    bar.update(fut.result())
    finally:
        bar.close()
    return out / "data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--out", required=True, help="output folder (parquet shards go to OUT/data)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (sample i depends only on seed and i)")
    parser.add_argument("--num-proc", type=int, default=1, help="worker processes")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per parquet shard")
    parser.add_argument("--levels", default=",".join(LEVELS),
                        help="comma-separated question levels, used in turn (surface,semantic,integrated)")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier output in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    levels = tuple(x.strip() for x in args.levels.split(",") if x.strip())
    data = synthesize(args.out, args.num, args.seed, args.num_proc, args.shard_size, levels, args.overwrite,
                      progress=not args.no_progress)
    print(f"wrote {args.num} samples to {data}\n"
          f"stage-1 data: vthinker convert perception --source {data} --out data/llamafactory --name synth_perception")
    return 0
