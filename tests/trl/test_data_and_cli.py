"""The RL dataset adapter on hub-shaped and MathVision rows, and the real `vthinker grpo` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grpo_helpers import DRAW

from vthinker_plugins.data.sources import DataError
from vthinker_plugins.protocol import DEFAULT_PROMPTS
from vthinker_plugins.trl.data import load_rl_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_v_interaction_rows_become_trl_prompts(rl_parquet):
    ds = load_rl_dataset(rl_parquet)
    assert len(ds) == 4
    row = ds[2]
    assert row["answer"] == "4" and row["id"] == "q2" and len(row["images"]) == 1
    system, user = row["prompt"]
    assert system["content"][0]["text"] == DEFAULT_PROMPTS.system
    assert user["content"][0] == {"type": "image"}
    assert "How many sides does shape 2 have?" in user["content"][1]["text"]


def test_mathvision_rows_with_relative_images_and_options(mathvision_dir):
    ds = load_rl_dataset(mathvision_dir / "testmini.jsonl", limit=5)
    rows = [ds[i] for i in range(len(ds))]
    assert all(r["images"][0].size[0] > 0 for r in rows)  # images/N.jpg resolved against the data folder
    with_options = [r for r in rows if r["options"]]
    assert with_options and all(r["answer"] in "ABCDE" for r in with_options)


def test_bad_rows_name_the_row_and_field(tmp_path, mathvision_dir):
    bad = tmp_path / "bad.jsonl"
    rows = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()[:3]]
    rows[1]["image"] = "images/does-not-exist.jpg"
    rows[2]["answer"] = ""
    bad.write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_rl_dataset(bad, image_base_dir=mathvision_dir)
    assert ds[0]["answer"]
    with pytest.raises(DataError, match=r"row 1, field 'image'.*does not exist"):
        ds[1]
    with pytest.raises(DataError, match=r"row 2: no reference answer"):
        ds[2]
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"question": "q", "answer": "1"}))
    with pytest.raises(DataError, match="missing columns: one of \\('images', 'image'\\)"):
        load_rl_dataset(missing)


def test_scripted_grpo_command_runs_and_resumes(tiny_model_dir, mathvision_dir, tmp_path, set_checkpoint_weights):
    """The smoke recipe through the scripted `vthinker grpo` runner (`vthinker_plugins.testing.scripted_grpo`): its
    scripted rollouts run code in the sandbox, their rewards differ and the gradient is not zero. A second
    run with more steps resumes from the checkpoint with the checkpoint's weights (one of them set to a
    known value), not the starting ones."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}

    def run(steps: int) -> str:
        cmd = [
            sys.executable, "-m", "vthinker_plugins.testing.scripted_grpo",
            "--script", str(ROOT / "recipes" / "grpo_cpu_smoke.script.jsonl"),
            "--config", str(ROOT / "recipes" / "grpo_cpu_smoke.yaml"),
            "--model_name_or_path", str(tiny_model_dir),
            "--dataset", str(mathvision_dir / "testmini.jsonl"),
            "--output_dir", str(out),
            "--max_steps", str(steps), "--save_strategy", "steps", "--save_steps", "1",
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    run(1)
    assert (out / "model.safetensors").exists() and (out / "checkpoint-1").is_dir()
    (step,) = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())["log_history"][:1]
    # Rollout 0 draws on the image and answers right, rollout 1 runs failing code and answers wrong.
    assert step["tools/calls_per_rollout"] == 1 and step["tools/error_rate"] == 0.5
    assert step["tools/images_per_rollout"] == 0.5 and step["tools/sandbox_s"] > 0
    assert step["rewards/accuracy/mean"] == 0.5 and step["rewards/tool/mean"] == 0.5
    assert step["reward_std"] > 0.5 and step["frac_reward_zero_std"] == 0
    assert step["grad_norm"] > 0 and step["loss"] != 0

    # One trained weight and one of the frozen vision tower, in the checkpoint's (original-format) names.
    trained, frozen = "model.norm.weight", "visual.blocks.0.norm1.weight"
    set_checkpoint_weights(out / "checkpoint-1" / "model.safetensors", {trained: 7.0, frozen: 7.0})
    log = run(2)
    assert f"resuming from {out / 'checkpoint-1'}" in log
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and sum(1 for entry in state["log_history"] if "loss" in entry) == 2
    resumed = load_file(str(out / "checkpoint-2" / "model.safetensors"))
    assert bool((resumed[frozen] == 7.0).all()), resumed[frozen][:4]  # starting value: 1.0
    # Trained for one step at lr 1e-5 from the checkpoint's 7.0.
    assert float((resumed[trained] - 7.0).abs().max()) < 1e-3, resumed[trained][:4]


def test_two_processes_with_scripted_tool_rollouts(tiny_model_dir, mathvision_dir, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): every rank runs its own rollouts,
    sandbox and tool images, and the metrics are gathered across ranks."""
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps({"id": "*", "rounds": ["<think>Draw.\n" + DRAW, "Seen.</think><answer>3</answer>"]}))
    out = tmp_path / "run"
    cmd = [
        str(Path(sys.executable).parent / "accelerate"), "launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "vthinker_plugins.testing.scripted_grpo", "--script", str(script),
        "--config", str(ROOT / "recipes" / "grpo_cpu_smoke.yaml"),
        "--model_name_or_path", str(tiny_model_dir), "--dataset", str(mathvision_dir / "testmini.jsonl"),
        "--output_dir", str(out), "--max_steps", "1", "--max_completion_length", "400",
        "--sandbox_workers", "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "'tools/calls_per_rollout': '1'" in log and "'tools/images_per_rollout': '1'" in log
    assert "'rewards/format/mean': '1'" in log
    assert (out / "model.safetensors").exists()
