"""The offline stage-2 smoke as llamafactory_configs/README.md documents it: the generated
V-Interaction-format sample, converted with --verify (every tool code re-run in the sandbox), trains
two steps with plain ``llamafactory-cli``."""

from __future__ import annotations

import json
from pathlib import Path

from test_train import SMOKE, check_run

from vthinker_plugins.cli import main as vthinker

ROOT = Path(__file__).resolve().parents[2]


def test_generated_interaction_sample_trains_stage2(run_lf, lf_env, tiny_model_dir, tmp_path) -> None:
    sample = tmp_path / "interaction_sample.parquet"
    data = tmp_path / "llamafactory"
    assert vthinker(["make-interaction-sample", str(sample), "--n", "4"]) == 0
    assert vthinker(["convert", "interaction", "--source", str(sample), "--out", str(data), "--verify",
                     "--no-progress"]) == 0
    summary = json.loads((data / "reports" / "v_interaction" / "summary.json").read_text())
    assert summary["written"] == 4 and summary["excluded"] == 0, summary
    out = tmp_path / "out"
    log = run_lf(["train", str(SMOKE / "stage2_cpu.yaml"), f"model_name_or_path={tiny_model_dir}",
                  f"dataset_dir={data}", f"output_dir={out}"], lf_env, cwd=ROOT)
    check_run(out)
    assert "</code>\n<sandbox_output>" in log
