"""Accepted samples/s of ``vthinker flywheel run`` against a local server with a fixed simulated
latency, at concurrency 1 (the baseline, measured in the same run) and N, and the share of wall time
the sandbox was busy.

The server is the built-in scripted one (templated problems, some flawed first drafts that the
checker-repairer sends back), answering every request after ``--latency`` seconds, as a model
would. Goal: throughput bound by the LLM (speed-up close to N) with the sandbox busy for at most
10% of the wall time. The sandbox's own capacity (accepted samples per second of sandbox busy time)
says how far the LLM side could speed up before the sandbox became the bound.

    .venvs/main/bin/python benchmarks/flywheel_throughput.py --latency 1.0 --concurrency 16 --num 96
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from sandbox import get_sandbox
from vthinker_plugins.cli import main as vthinker


def one_run(folder: Path, num: int, concurrency: int, latency: float) -> dict:
    with contextlib.redirect_stderr(io.StringIO()):  # the command's own summary table
        code = vthinker(["flywheel", "run", "--out", str(folder), "--num", str(num), "--concurrency",
                         str(concurrency), "--scripted-latency", str(latency), "--expand", "none", "--no-progress",
                         "--no-report"])
    assert code == 0
    summary = json.loads((folder / "summary.json").read_text())
    run = summary["this_run"]
    llm = run["llm"]
    requests = llm["generator"].get("requests", 0) + (llm["checker"] or {}).get("requests", 0)
    return {"accepted": summary["accepted"], "tasks": summary["tasks_done"], "wall_s": run["wall_s"],
            "busy_s": run["sandbox_busy_s"], "cells": run["sandbox_cells"], "cell_s": run["sandbox_cell_s"],
            "share": run["sandbox_share"], "requests": requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per simulated LLM reply")
    parser.add_argument("--concurrency", type=int, default=16, help="N")
    parser.add_argument("--num", type=int, default=96, help="base tasks at concurrency N")
    parser.add_argument("--num-serial", type=int, default=6, help="base tasks at concurrency 1")
    args = parser.parse_args()
    get_sandbox().run("print(1)")  # start the warm pool outside the measured runs
    with tempfile.TemporaryDirectory() as tmp:
        serial = one_run(Path(tmp) / "serial", args.num_serial, 1, args.latency)
        parallel = one_run(Path(tmp) / "parallel", args.num, args.concurrency, args.latency)
    rate = {name: r["accepted"] / r["wall_s"] for name, r in (("serial", serial), ("parallel", parallel))}
    print(f"simulated LLM latency {args.latency:.2f} s per request, scripted generator + checker, real sandbox")
    latency = args.latency
    for name, r, c in (("serial", serial, 1), ("parallel", parallel, args.concurrency)):
        print(f"concurrency {c:3d}: {r['accepted']:3d}/{r['tasks']:3d} accepted in {r['wall_s']:7.2f} s = "
              f"{rate[name]:6.2f} accepted/s; sandbox busy {100 * r['share']:5.1f}% of the wall time "
              f"({r['cells']} cells, {1000 * r['cell_s'] / max(1, r['cells']):.0f} ms each; "
              f"{r['requests'] / max(1, r['accepted']):.1f} LLM requests per accepted sample, "
              f"{r['requests'] * latency / r['wall_s']:.1f} in flight on average)"
              + ("  (baseline)" if c == 1 else ""))
    speedup = rate["parallel"] / rate["serial"]
    print(f"speed-up at concurrency {args.concurrency}: {speedup:.2f}x (LLM-bound ideal: {args.concurrency}x)")
    capacity = parallel["accepted"] / parallel["busy_s"] if parallel["busy_s"] else float("inf")
    print(f"sandbox capacity: {capacity:.1f} accepted samples per second of sandbox busy time "
          f"({capacity / rate['parallel']:.1f}x the measured parallel rate)")


if __name__ == "__main__":
    main()
