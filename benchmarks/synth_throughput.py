"""Samples/s of ``vthinker synth-perception``, serial and parallel, and per core.

Baseline measured in the same run: the serial rate; the parallel run prints its speed-up over
it and the rate per worker process (ideal: speed-up = workers, per-core rate = serial rate).

    .venvs/main/bin/python benchmarks/synth_throughput.py --num 2000 --num-proc 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from vthinker_plugins.data.synth_perception import make_sample, synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    t = time.perf_counter()
    n_core = max(50, args.num // 10)
    for i in range(n_core):  # generation + rendering alone, no parquet writing
        make_sample(0, i)
    core_rate = n_core / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        synthesize(f"{tmp}/serial", args.num, seed=0, num_proc=1, shard_size=250, progress=False)
        serial = args.num / (time.perf_counter() - t)
        t = time.perf_counter()
        synthesize(f"{tmp}/par", args.num, seed=0, num_proc=args.num_proc, shard_size=250, progress=False)
        parallel = args.num / (time.perf_counter() - t)
    print(f"figure+render only     : {core_rate:8.0f} samples/s (1 core)")
    print(f"synthesize, 1 process  : {serial:8.0f} samples/s  (baseline)")
    print(f"synthesize, {args.num_proc} processes: {parallel:8.0f} samples/s  speed-up {parallel / serial:.2f}x, "
          f"{parallel / args.num_proc:.0f} samples/s per core")


if __name__ == "__main__":
    main()
