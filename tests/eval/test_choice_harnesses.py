"""We-Math and VisuLogic in both harnesses: real lmms-eval and VLMEvalKit runs (subprocesses) of the tiny model
through the V-Thinker loop, results in each harness's own files, and an interrupted lmms-eval run resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from harness import Run, run_command

WEMATH_LAYOUT = {"Score (Strict)", "InsufficientKnowledge (Strict)", "InadequateGeneralization (Strict)",
                 "CompleteMastery (Strict)", "RoteMemorization (Strict)", "Score (Loose)",
                 "InsufficientKnowledge (Loose)", "InadequateGeneralization (Loose)", "CompleteMastery (Loose)",
                 "RoteMemorization (Loose)", "One-step(S1)", "Two-step(S2)", "Three-step(S3)"}


def _one(pattern: str, run: Run) -> Path:
    files = sorted((run.out / "out").glob(pattern))
    assert len(files) == 1, f"{pattern}: {files}\n{run.log[-4000:]}"
    return files[0]


def _samples(run: Run, task: str) -> list[dict]:
    return [json.loads(line) for line in _one(f"*/*_samples_{task}.jsonl", run).read_text().splitlines() if line]


def test_lmms_eval_runs_both_tasks_with_our_command(lmms_choice_run: Run) -> None:
    run = lmms_choice_run
    assert run.returncode == 0, run.log[-6000:]
    results = json.loads(_one("*/*_results.json", run).read_text())["results"]
    # The scripted answer is the gold letter: every problem is right.
    assert results["vthinker_wemath"]["accuracy,none"] == 100.0
    assert results["vthinker_visulogic"]["accuracy,none"] == 100.0
    assert {"wemath_strict,none", "wemath_loose,none"} <= set(results["vthinker_wemath"])
    for task, expected_ids in (("vthinker_wemath", ["2steps_1-1", "2steps_1-2"]),
                               ("vthinker_visulogic", ["vl-0-0000", "vl-0-0001"])):
        rows = _samples(run, task)
        assert sorted(r["accuracy"]["id"] for r in rows) == expected_ids
        for row in rows:
            verdict = row["accuracy"]
            response = row["filtered_resps"][0] if isinstance(row["filtered_resps"], list) else row["filtered_resps"]
            assert "<code>" in response and "<sandbox_output><image></sandbox_output>" in response
            assert verdict["correct"] is True and verdict["extracted"] == verdict["extracted"].upper()
            assert len(verdict["generated_images"]) == 1 and Path(verdict["generated_images"][0]).exists()
    wemath = json.loads(_one("*/*_vthinker_wemath_wemath_scores.json", run).read_text())
    assert set(wemath) == WEMATH_LAYOUT and wemath["One-step(S1)"] == "100.00%"
    visulogic = json.loads(_one("*/*_vthinker_visulogic_visulogic_scores.json", run).read_text())
    assert visulogic["Overall"] == {"tot": 2, "hit": 2, "acc": 100.0}
    # --limit 2 takes two steps of one group, not its multi-step problem: the log says the four dimensions
    # need whole groups.
    assert "1 of 1 problem groups lack a part" in run.log


def test_lmms_eval_resumes_an_interrupted_run(lmms_choice_run: Run, main_bin: Path, tiny_model_dir: Path,
                                             draw_script: Path, harness_env: dict[str, str]) -> None:
    """The first run stopped after two docs; the same command over three docs (same image_dir) keeps the two
    trajectories it has and generates the third only."""
    run = lmms_choice_run
    assert run.returncode == 0, run.log[-6000:]
    images = run.out / "images"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in images.glob("vthinker_visulogic_*/trajectory.json")}
    assert len(before) == 2
    cmd = [
        str(main_bin / "lmms_eval"), "--model", "vthinker",
        "--model_args", f"pretrained=scripted:{tiny_model_dir},script={draw_script},device=cpu,image_dir={images}",
        "--tasks", "vthinker_visulogic", "--limit", "3", "--output_path", str(run.out / "resumed"), "--log_samples",
    ]
    again = run_command(cmd, harness_env, run.out)
    assert again.returncode == 0, again.log[-6000:]
    after = sorted(images.glob("vthinker_visulogic_*/trajectory.json"))
    assert len(after) == 3
    for path, (mtime, data) in before.items():
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data, f"{path} was generated again"
    results = json.loads(next((run.out / "resumed").glob("*/*_results.json")).read_text())["results"]
    assert results["vthinker_visulogic"]["accuracy,none"] == 100.0


def test_vlmevalkit_runs_both_datasets(vlmeval_choice_run: Run) -> None:
    run = vlmeval_choice_run
    assert run.returncode == 0, run.log[-6000:]
    pred_dir = run.out / "outputs" / "V-Thinker-tiny"
    status = json.loads((pred_dir / "status.json").read_text())
    for dataset in ("VThinker_WeMath", "VThinker_VisuLogic"):
        entry = status["datasets"][dataset]
        assert entry["status"] == "done" and not entry.get("error_message"), entry
        predictions = pd.read_excel(pred_dir / f"V-Thinker-tiny_{dataset}.xlsx")
        assert len(predictions) == 2
        for _, row in predictions.iterrows():
            assert "<sandbox_output><image></sandbox_output>" in row["prediction"]
            extra = json.loads(row["extra_records"])
            assert extra["n_tool_calls"] == 1 and Path(extra["generated_images"][0]).exists()
        verdicts = pd.read_excel(pred_dir / f"V-Thinker-tiny_{dataset}_vthinker_verdicts.xlsx")
        assert list(verdicts["correct"]) == [True, True]
    assert (run.out / "LMUData" / "VThinker_WeMath.tsv").exists()  # built on first use from the local data
    wemath = json.loads((pred_dir / "V-Thinker-tiny_VThinker_WeMath_vthinker_score.json").read_text())
    assert wemath["Overall"] == 100.0 and set(wemath) == WEMATH_LAYOUT | {"Overall"}
    visulogic = json.loads((pred_dir / "V-Thinker-tiny_VThinker_VisuLogic_vthinker_score.json").read_text())
    assert visulogic["Overall"] == 100.0 and visulogic["Quantitative Reasoning"] == 100.0
    assert visulogic["counts"]["Spatial Reasoning"] == {"tot": 1, "hit": 1, "acc": 100.0}
