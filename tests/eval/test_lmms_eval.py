"""Real lmms-eval runs (subprocess) of the V-Thinker tasks with the ``vthinker`` model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI
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
    # The official layout sits beside lmms-eval's own results file, in the model's folder.
    scores = sorted((run.out / "out").glob("*/*_vthinker_mathvision_testmini_mathvision_scores.json"))
    assert len(scores) == 1, scores
    assert scores[0].parent == sorted((run.out / "out").glob("*/*_results.json"))[0].parent
    layout = json.loads(scores[0].read_text())
    assert layout["-all"] == "4/4=100.00%"
    assert any(key.startswith("-level") for key in layout)


def test_mathvision_scores_of_models_sharing_an_output_path_are_kept_apart(tmp_path: Path) -> None:
    """Two models evaluated into one --output_path each keep their official MATH-V layout."""
    import argparse

    from vthinker_plugins.lmms_eval.tasks import aggregate_mathvision

    def verdicts(hits: int) -> list[dict]:
        return [{"task": "mathvision", "key": f"vthinker_mathvision_testmini:{i}", "correct": i < hits,
                 "level": 1, "subject": "algebra"} for i in range(2)]

    written = {}
    for model, hits in (("/ckpt/run_a/V-Thinker", 2), ("/ckpt/run_b/V-Thinker", 0)):
        args = argparse.Namespace(output_path=str(tmp_path), model="vthinker", timezone="UTC",
                                  model_args=f"pretrained={model},device=cpu")
        assert aggregate_mathvision(verdicts(hits), args=args) == 50.0 * hits
        files = sorted(tmp_path.glob(f"{Path(model).parent.name}__V-Thinker/*_mathvision_scores.json"))
        assert len(files) == 1, sorted(tmp_path.rglob("*.json"))
        written[model] = json.loads(files[0].read_text())["-all"]
    assert written == {"/ckpt/run_a/V-Thinker": "2/2=100.00%", "/ckpt/run_b/V-Thinker": "0/2=0.00%"}


def test_reference_oracle_drawings_reach_judge_and_pixel_metric(
    tmp_path: Path, main_bin: Path, harness_env: dict[str, str]
) -> None:
    """The reference oracle replays the ground-truth code; its drawings reach both the pixel metric
    and the LMM judge (a real HTTP server here that compares them with the ground truth), which agree."""
    cmd = [
        str(main_bin / "lmms_eval"), "--model", "vthinker", "--model_args", "pretrained=reference",
        "--tasks", "vtbench_perception,vtbench_instruction", "--output_path", str(tmp_path / "out"),
    ]
    with FakeOpenAI() as judge:
        calls = judge.requests
        env = dict(harness_env, VTHINKER_JUDGE_URL=judge.url, VTHINKER_JUDGE_MODEL="judge-vl", OPENAI_API_KEY="x")
        run = run_command(cmd, env, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    results = _results(run)["results"]
    for task in ("vtbench_perception", "vtbench_instruction"):
        assert results[task]["accuracy,none"] == 100.0, results[task]
        assert results[task]["pixel_accuracy,none"] == 100.0, results[task]
        assert results[task]["judge_failed,none"] == 0
        assert results[task]["judge_pixel_agreement,none"] == 100.0
    # One judge call per item, each showing the three images (original, generated, ground truth).
    assert len(calls) == 6
    for call in calls:
        parts = [p for m in call["messages"] if isinstance(m["content"], list) for p in m["content"]]
        assert sum(p.get("type") == "image_url" for p in parts) == 3


def test_judge_verdicts_are_the_drawing_scores(
    tmp_path: Path, main_bin: Path, tiny_model_dir: Path, half_right_script: Path, harness_env: dict[str, str]
) -> None:
    """The scripted tiny model draws one item of each drawing task right (its reference code) and one wrong
    (a stray line): the judge, comparing each drawing with the ground truth, makes the accuracy that share."""
    cmd = [
        str(main_bin / "lmms_eval"), "--model", "vthinker",
        "--model_args", f"pretrained=scripted:{tiny_model_dir},script={half_right_script},device=cpu",
        "--tasks", "vtbench_perception,vtbench_instruction", "--limit", "2", "--output_path", str(tmp_path / "out"),
    ]
    with FakeOpenAI() as judge:
        env = dict(harness_env, VTHINKER_JUDGE_URL=judge.url, VTHINKER_JUDGE_MODEL="judge-vl", OPENAI_API_KEY="x")
        run = run_command(cmd, env, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    results = _results(run)["results"]
    for task in ("vtbench_perception", "vtbench_instruction"):
        assert results[task]["accuracy,none"] == 50.0, results[task]
        assert results[task]["judge_failed,none"] == 0
        assert results[task]["judge_pixel_agreement,none"] == 100.0
    assert len(judge.requests) == 4  # one verdict per drawing


def test_failed_evaluation_gives_non_zero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain lmms-eval logs a failed evaluation and exits 0; our command says so with its exit status."""
    from vthinker_plugins.lmms_eval.cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() hands lmms-eval its own argv
    code = main(["--model", "vthinker", "--model_args", "pretrained=reference", "--tasks", "vtbench_no_such_task",
                 "--output_path", str(tmp_path / "out")])
    assert code == 1
    captured = capsys.readouterr()
    assert "vtbench_no_such_task" in captured.out + captured.err


def test_task_listings_exit_zero(tmp_path: Path, main_bin: Path, harness_env: dict[str, str]) -> None:
    """``lmms_eval --tasks list`` lists our tasks too and is a success (lmms-eval ends it with sys.exit())."""
    run = run_command([str(main_bin / "lmms_eval"), "--tasks", "list"], harness_env, tmp_path)
    assert run.returncode == 0, run.log[-3000:]
    assert " - vtbench_perception" in run.log and " - vthinker_mathvision_testmini" in run.log


def test_bad_task_data_is_one_line_naming_file_and_row(
    tmp_path: Path, main_bin: Path, harness_env: dict[str, str], mathvision_dir: Path
) -> None:
    """A data file that does not parse stops the run at once (no retries) with its file and line; a row
    whose image is missing with its file and row; neither with a traceback."""
    rows = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()[:2]]
    for row in rows:
        row["image"] = str(mathvision_dir / row["image"])
    data = tmp_path / "testmini.jsonl"
    cmd = [str(main_bin / "lmms_eval"), "--model", "vthinker", "--model_args", "pretrained=reference",
           "--tasks", "vthinker_mathvision_testmini", "--output_path", str(tmp_path / "out")]
    env = dict(harness_env, VTHINKER_MATHVISION_DATA=str(data))
    data.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:-30] + "\n")
    run = run_command(cmd, env, tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.log, run.log[-3000:]
    assert f"lmms_eval: task data {data}: {data} line 2: not valid JSON" in run.log
    rows[1]["image"] = str(tmp_path / "missing.jpg")
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = run_command(cmd, env, tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.log, run.log[-3000:]
    assert (f"lmms_eval: bad data: {data} row 1 (line 2) (id={rows[1]['id']}) field 'image': image file "
            f"{tmp_path / 'missing.jpg'} does not exist") in run.log


def test_unreachable_hub_names_the_data_variable(tmp_path: Path, main_bin: Path, harness_env: dict[str, str]) -> None:
    """Without a local copy and with no way to the hub (offline, nothing cached): one line naming the
    variable to set, in the seconds lmms-eval takes to start (no retries)."""
    env = dict(harness_env, HF_HOME=str(tmp_path / "hf-home"))
    env.pop("VTHINKER_VTBENCH_DATA")
    cmd = [str(main_bin / "lmms_eval"), "--model", "vthinker", "--model_args", "pretrained=reference",
           "--tasks", "vtbench_reasoning", "--output_path", str(tmp_path / "out")]
    started = time.monotonic()
    run = run_command(cmd, env, tmp_path)
    elapsed = time.monotonic() - started
    assert run.returncode != 0 and "Traceback" not in run.log, run.log[-3000:]
    assert "lmms_eval: task data We-Math/VTBench: cannot load We-Math/VTBench from the Hugging Face hub" in run.log
    assert "set VTHINKER_VTBENCH_DATA to a local copy" in run.log and elapsed < 60, elapsed


def test_null_accuracy_is_explained_in_the_log() -> None:
    """A judge that failed on every doc: the aggregation logs why the accuracy is null."""
    from loguru import logger

    from vthinker_plugins.lmms_eval.tasks import aggregate_accuracy

    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        verdicts = [{"task": "vtbench_perception", "correct": None, "judge_status": "failed",
                     "judge_error": "APIConnectionError: Connection error."}] * 3
        assert aggregate_accuracy(verdicts) is None
    finally:
        logger.remove(sink)
    assert any("vtbench_perception: accuracy is null: the judge failed on 3 of 3 row(s) (APIConnectionError"
               in m for m in messages), messages


def test_unreachable_judge_is_reported_when_the_tasks_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks' data loading (process_docs, before any generation) warns once about a judge that is down."""
    from loguru import logger

    from vthinker_plugins.lmms_eval import tasks

    monkeypatch.setenv("VTHINKER_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VTHINKER_JUDGE_MODEL", "judge-vl")
    monkeypatch.setattr(tasks, "_judge_cache", {})
    monkeypatch.setattr(tasks, "_warned", set())
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        tasks._warn_if_judge_unreachable()
        tasks._warn_if_judge_unreachable()
    finally:
        logger.remove(sink)
    assert len(messages) == 1, messages
    assert "the judge judge-vl at http://127.0.0.1:9/v1 is unreachable (Connect" in messages[0]
