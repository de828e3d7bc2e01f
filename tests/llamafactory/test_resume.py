"""Plain ``llamafactory-cli train ... resume_from_checkpoint=`` restores the checkpoint's weights, stage 1
and stage 2 (transformers 5 alone reloads the original-format keys under nothing and keeps the
starting weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "llamafactory_configs" / "smoke"
# Checkpoint (original-format) names: one weight the smoke configs train, one of the frozen vision tower.
TRAINED, FROZEN = "model.norm.weight", "visual.blocks.0.norm1.weight"


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_resume_restores_the_checkpoint_weights(
    stage, run_lf, lf_env, lf_data, tiny_model_dir, tmp_path, set_checkpoint_weights
) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "out"
    args = ["train", str(SMOKE / f"{stage}_cpu.yaml"), f"model_name_or_path={tiny_model_dir}",
            f"dataset_dir={lf_data}", f"output_dir={out}"]
    run_lf(args, lf_env, cwd=ROOT)
    checkpoint = out / "checkpoint-2"
    set_checkpoint_weights(checkpoint / "model.safetensors", {TRAINED: 7.0, FROZEN: 7.0})

    log = run_lf([*args, f"resume_from_checkpoint={checkpoint}", "max_steps=3"], lf_env, cwd=ROOT)
    assert "Resuming training from checkpoint with epoch 0 and global step 2" in log
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and sum(1 for entry in state["log_history"] if "loss" in entry) == 3
    resumed = load_file(str(out / "model.safetensors"))
    assert bool((resumed[FROZEN] == 7.0).all()), resumed[FROZEN][:4]  # the starting value is 1.0
    # One step at lr 1e-4 (Adam: about lr per weight) from the checkpoint's 7.0.
    assert float((resumed[TRAINED] - 7.0).abs().max()) < 1e-2, resumed[TRAINED][:4]
    assert "There were missing keys" not in log and "There were unexpected keys" not in log
