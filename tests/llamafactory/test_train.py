"""Plain ``llamafactory-cli train <yaml>`` runs on the tiny model, on CPU: stage 1, stage 2, and
stage 2 re-launched by LlamaFactory under torchrun with two gloo workers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "llamafactory_configs" / "smoke"


def check_run(out: Path) -> list[float]:
    """Finite losses logged for both steps and a checkpoint with weights written."""
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
    assert state["global_step"] == 2
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    assert (out / "model.safetensors").is_file()
    return losses


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_train_two_steps(stage, run_lf, lf_env, lf_data, tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "out"
    log = run_lf(
        ["train", str(SMOKE / f"{stage}_cpu.yaml"), f"model_name_or_path={tiny_model_dir}",
         f"dataset_dir={lf_data}", f"output_dir={out}"],
        lf_env, cwd=ROOT,
    )
    check_run(out)
    if stage == "stage2":  # the in-turn template was used, not a stock one
        assert "<sandbox_output>" in log and "</code>\n<sandbox_output>" in log


def test_train_under_torchrun_two_workers(run_lf, lf_env, lf_data, tiny_model_dir, tmp_path) -> None:
    """FORCE_TORCHRUN re-launches llamafactory/launcher.py per worker: the template must be there too."""
    out = tmp_path / "out"
    env = {**lf_env, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "NNODES": "1"}
    log = run_lf(
        ["train", str(SMOKE / "stage2_cpu.yaml"), f"model_name_or_path={tiny_model_dir}", f"dataset_dir={lf_data}",
         f"output_dir={out}", "ddp_backend=gloo"],
        env, cwd=ROOT, timeout=400,
    )
    assert "Initializing 2 distributed tasks" in log
    for rank in (0, 1):  # both workers parsed the arguments, template included, and trained
        assert f"Process rank: {rank}, world size: 2" in log
    assert "Total train batch size (w. parallel, distributed & accumulation) = 2" in log
    check_run(out)
