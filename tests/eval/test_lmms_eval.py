"""Real lmms-eval runs (subprocess) of the V-Thinker tasks with the ``vthinker`` model."""

from __future__ import annotations

import json
from pathlib import Path

from harness import Run, run_command
from PIL import Image

DRAWING_METRICS = ("accuracy,none", "pixel_accuracy,none", "judge_failed,none", "judge_pixel_agreement,none")


def _results(run: Run) -> dict:
    files = sorted((run.out / "out").glob("*/*_results.json"))
    assert len(files) == 1, f"expected one results file, got {files}\n{run.log[-4000:]}"
    return json.loads(files[0].read_text())


def _samples(run: Run, task: str) -> list[dict]:
    files = sorted((run.out / "out").glob(f"*/*_samples_{task}.jsonl"))
    assert len(files) == 1, f"expected one samples file for {task}, got {files}"
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def test_vtbench_group_runs_with_our_command(lmms_vtbench_run: Run) -> None:
    assert lmms_vtbench_run.returncode == 0, lmms_vtbench_run.log[-6000:]
    results = _results(lmms_vtbench_run)["results"]
    assert {"vtbench", "vtbench_perception", "vtbench_instruction", "vtbench_reasoning"} <= set(results)
    for task in ("vtbench_perception", "vtbench_instruction"):
        for metric in DRAWING_METRICS:
            assert metric in results[task], (task, metric, results[task])
        # A line across the corner is not the requested marks: no judge, the pixel metric decides.
        assert results[task]["accuracy,none"] == 0.0
        assert results[task]["pixel_accuracy,none"] == 0.0
        assert results[task]["judge_failed,none"] == 0
    # The scripted answer is the reference answer: interactive reasoning is all correct.
    assert results["vtbench_reasoning"]["accuracy,none"] == 100.0


def test_vtbench_samples_reference_generated_images(lmms_vtbench_run: Run) -> None:
    assert lmms_vtbench_run.returncode == 0, lmms_vtbench_run.log[-6000:]
    for task in ("vtbench_perception", "vtbench_instruction", "vtbench_reasoning"):
        rows = _samples(lmms_vtbench_run, task)
        assert len(rows) == 2
        for row in rows:
            verdict = row["accuracy"]
            response = row["filtered_resps"]
            response = response[0] if isinstance(response, list) else response
            # The whole assistant turn is logged: code, then the sandbox image fed back, then the answer.
            assert "<code>" in response and "<sandbox_output><image></sandbox_output>" in response
            assert verdict["task"] == task and verdict["key"].startswith(f"{task}:")
            assert len(verdict["generated_images"]) == 1
            image_path = Path(verdict["generated_images"][0])
            assert image_path.exists() and image_path.is_relative_to(lmms_vtbench_run.out / "out")
            with Image.open(image_path) as image:
                assert image.size == (480, 400)  # the drawing on the VTBench figure
            record = json.loads(Path(verdict["trajectory"]).read_text())
            assert record["text"] == response and record["n_tool_calls"] == 1
            assert record["generated_images"] == verdict["generated_images"]


def test_mathvision_testmini_with_plain_lmms_eval_and_include_path(lmms_mathvision_run: Run) -> None:
    run = lmms_mathvision_run
    assert run.returncode == 0, run.log[-6000:]
    results = _results(run)["results"]["vthinker_mathvision_testmini"]
    assert results["accuracy,none"] == 100.0  # scripted answers are the gold answers
    rows = _samples(run, "vthinker_mathvision_testmini")
    assert len(rows) == 4
    for row in rows:
        verdict = row["accuracy"]
        assert verdict["correct"] is True and verdict["level"] is not None and verdict["subject"]
        assert all(Path(p).exists() for p in verdict["generated_images"])
    layout = json.loads((run.out / "out" / "vthinker" / "vthinker_mathvision_testmini_mathvision_scores.json")
                        .read_text())
    assert layout["-all"] == "4/4=100.00%"
    assert any(key.startswith("-level") for key in layout)


def test_reference_oracle_draws_what_the_annotation_shows(
    tmp_path: Path, main_bin: Path, harness_env: dict[str, str]
) -> None:
    """The reference oracle replays the ground-truth code: its drawings reach scoring and pass."""
    cmd = [
        str(main_bin / "lmms_eval"), "--model", "vthinker", "--model_args", "pretrained=reference",
        "--tasks", "vtbench_perception,vtbench_instruction", "--output_path", str(tmp_path / "out"),
    ]
    run = run_command(cmd, harness_env, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    results = _results(run)["results"]
    for task in ("vtbench_perception", "vtbench_instruction"):
        assert results[task]["accuracy,none"] == 100.0, results[task]
        assert results[task]["pixel_accuracy,none"] == 100.0, results[task]


def test_missing_local_data_fails_with_the_path_named(
    tmp_path: Path, main_bin: Path, tiny_model_dir: Path, harness_env: dict[str, str]
) -> None:
    missing = tmp_path / "no_such_vtbench.parquet"
    env = dict(harness_env, VTHINKER_VTBENCH_DATA=str(missing))
    cmd = [
        str(main_bin / "lmms_eval"), "--model", "vthinker", "--model_args", f"pretrained={tiny_model_dir}",
        "--tasks", "vtbench_reasoning", "--limit", "1", "--output_path", str(tmp_path / "out"),
    ]
    run = run_command(cmd, env, tmp_path)
    assert run.returncode != 0
    assert str(missing) in run.log
