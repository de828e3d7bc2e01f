"""scripts/gpu_check.sh, the prepared GPU check, passes its CPU dry run and writes its figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_cpu_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", "--out", str(out)],
        env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["trl"] == "1.16.0" and list(report["models"]) == ["tiny"]
    assert 100_000 < report["models"]["tiny"]["parameters"] < 1_000_000
    loop, grpo = report["models"]["tiny"]["hf_loop"], report["models"]["tiny"]["grpo"]
    # The interactive loop ran the sandbox twice per sample and fed both images back.
    assert loop["errors"] == [] and loop["tool_calls"] == 2 * loop["samples"] == loop["tool_images"]
    assert loop["tool_errors"] == 0 and loop["answers_right"] == loop["samples"] and loop["rounds_per_sample"] == 3
    assert loop["samples_per_s"] > 0 and loop["tokens_per_s"] > 0 and loop["generated_tokens"] > 0
    # Two real GRPO steps: rollouts with tool calls, differing rewards, a gradient.
    assert len(grpo["s_per_step"]) == 2 and all(s > 0 for s in grpo["s_per_step"])
    assert grpo["calls_per_rollout"] == [2.0, 2.0] and grpo["tool_cells"] == 2 * 2 * grpo["rollouts_per_step"]
    assert all(g > 0 for g in grpo["grad_norm"]) and math.isfinite(grpo["training_loss"])
    assert grpo["tool_phase_ratio"] >= 1.0 and grpo["peak_memory_gb"] > 0
