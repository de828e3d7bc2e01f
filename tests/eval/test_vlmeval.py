"""A real VLMEvalKit runner run (inference + evaluation) with the tiny model, and the registration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest
from harness import Run

MODEL = "V-Thinker-tiny"


def _pred_dir(run: Run) -> Path:
    return run.out / "outputs" / MODEL


def test_runner_writes_predictions_with_trajectories(vlmeval_run: Run) -> None:
    assert vlmeval_run.returncode == 0, vlmeval_run.log[-6000:]
    status = json.loads((_pred_dir(vlmeval_run) / "status.json").read_text())
    for dataset in ("VTBench", "VThinker_MathVision_MINI"):
        entry = status["datasets"][dataset]
        assert entry["status"] == "done" and not entry.get("error_message"), entry
        predictions = pd.read_excel(_pred_dir(vlmeval_run) / f"{MODEL}_{dataset}.xlsx")
        # --limit 2 is per task, as in vthinker run and lmms-eval: VTBench has three tasks.
        assert len(predictions) == (6 if dataset == "VTBench" else 2)
        if dataset == "VTBench":
            assert predictions["category"].value_counts().to_dict() == {"perception": 2, "instruction": 2,
                                                                        "reasoning": 2}
        for _, row in predictions.iterrows():
            assert "<sandbox_output><image></sandbox_output>" in row["prediction"]
            extra = json.loads(row["extra_records"])
            assert extra["n_tool_calls"] == 1 and len(extra["generated_images"]) == 1
            assert Path(extra["generated_images"][0]).exists()
            record = json.loads(Path(extra["record"]).read_text())
            assert record["text"] == row["prediction"]


def test_evaluation_writes_scores(vlmeval_run: Run) -> None:
    assert vlmeval_run.returncode == 0, vlmeval_run.log[-6000:]
    pred_dir = _pred_dir(vlmeval_run)
    mathvision = json.loads((pred_dir / f"{MODEL}_VThinker_MathVision_MINI_vthinker_score.json").read_text())
    assert mathvision["-all"] == "2/2=100.00%" and mathvision["Overall"] == 100.0
    vtbench = json.loads((pred_dir / f"{MODEL}_VTBench_vthinker_score.json").read_text())
    # --limit 2 on the combined dataset: the first two items of each task.
    assert vtbench["reasoning"]["accuracy_pct"] == 100.0 and vtbench["reasoning"]["n"] == 2
    perception = vtbench["perception"]
    assert perception["n"] == 2 and perception["pixel_n"] == 2 and perception["judge_ok"] == 2
    # The judge compares each drawing with the ground truth: the reference marks pass, the stray line does
    # not, so the accuracy is the true share (1 of 2), as the pixel metric finds too.
    assert perception["accuracy_pct"] == 50.0 and perception["pixel_pass_rate"] == 0.5
    assert perception["judge_pixel_agreement"] == 1.0 and perception["judge_failed"] == 0
    assert vtbench["instruction"]["accuracy_pct"] == 50.0 and vtbench["instruction"]["judge_ok"] == 2
    # One judge call per drawing item (2 perception + 2 instruction), none for answers the rules accept.
    assert len(vlmeval_run.judge_calls) == 4
    verdicts = pd.read_excel(pred_dir / f"{MODEL}_VTBench_vthinker_verdicts.xlsx")
    assert set(verdicts["category"]) == {"perception", "instruction", "reasoning"}
    for paths in verdicts["generated_images"]:
        assert all(Path(p).exists() for p in json.loads(paths))


def test_local_tsvs_and_registration(vlmeval_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    lmudata = vlmeval_run.out / "LMUData"
    assert (lmudata / "VTBench.tsv").exists() and (lmudata / "VThinker_MathVision_MINI.tsv").exists()
    monkeypatch.setenv("LMUData", str(lmudata))
    import vlmeval.config
    import vlmeval.dataset

    import vthinker_plugins.vlmeval as plugin

    assert set(plugin.DATASETS) <= set(vlmeval.dataset.SUPPORTED_DATASETS)
    assert "V-Thinker-7B" in vlmeval.config.supported_VLM
    dataset = vlmeval.dataset.build_dataset("VTBench_Reasoning")
    assert len(dataset) == 3 and set(dataset.data["category"]) == {"reasoning"}
    sample = dataset.row_sample(dataset.data.iloc[0])
    assert sample.task == "vtbench_reasoning" and sample.max_rounds == 5 and sample.answer
    perception = vlmeval.dataset.build_dataset("VTBench_Perception")
    first = perception.row_sample(perception.data.iloc[0])
    assert first.max_rounds == 1 and first.meta["annotation"].size == first.images[0].size


def test_launcher_takes_vlmevalkit_arguments() -> None:
    from vthinker_plugins.vlmeval.launcher import add_arguments

    parser = argparse.ArgumentParser(prog="vthinker vlmeval")
    add_arguments(parser)
    args = parser.parse_args(["--data", "VTBench", "VThinker_MathVision_MINI", "--model", "V-Thinker-7B",
                              "--mode", "infer", "--reuse", "--lmudata", "/tmp/x", "--vthinker-model", "a=/ckpt"])
    assert args.data == ["VTBench", "VThinker_MathVision_MINI"] and args.mode == "infer" and args.reuse
    assert args.lmudata == "/tmp/x" and args.vthinker_model == ["a=/ckpt"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "VTBench", "--no-such-flag"])


def test_models_sharing_a_work_dir_keep_their_own_trajectories(tmp_path: Path) -> None:
    """Two models evaluated into one work dir (``--model A B``, one image folder): the second
    model's trajectories must not replace the first one's, which its evaluation reads back."""
    from fake_openai import FakeOpenAI, fixed
    from PIL import Image

    from vthinker_plugins.vlmeval.model import VThinkerChat

    image = tmp_path / "0.png"
    Image.new("RGB", (64, 64), "white").save(image)
    message = [{"type": "image", "value": str(image)}, {"type": "text", "value": "What is 3 + 4?"}]
    outputs = {}
    for name, reply in (("openai:model-a", "<think>7</think><answer>7</answer>"),
                        ("openai:model-b", "<think>8</think><answer>8</answer>")):
        with FakeOpenAI(fixed(reply)) as served:
            model = VThinkerChat(model_path=name, base_url=served.url, api_key="x",
                                 image_dir=str(tmp_path / "vthinker_images"))
            outputs[name] = model.generate_inner(message, dataset="VTBench_Reasoning")
            model.backend.close()
    records = {name: json.loads(out["extra_records"])["record"] for name, out in outputs.items()}
    assert records["openai:model-a"] != records["openai:model-b"]
    for name, out in outputs.items():
        assert json.loads(Path(records[name]).read_text())["text"] == out["prediction"]
    assert json.loads(Path(records["openai:model-a"]).read_text())["answer"] == "7"

    # Models registered by name (several names may share one checkpoint) get a folder per name.
    import vlmeval.config

    from vthinker_plugins.vlmeval import register_model

    register_model("V-Thinker-a", "/ckpt", max_rounds=1)
    assert vlmeval.config.supported_VLM["V-Thinker-a"].keywords["name"] == "V-Thinker-a"


def test_vlmevalkit_judge_uses_the_official_prompt_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With VLMEvalKit's own judge arguments, ``VTHINKER_JUDGE_PROMPT_INSTRUCTION`` (the dataset card's
    prompt, eval_tasks/README.md) is still what the judge is asked."""
    import asyncio

    from fake_openai import FakeOpenAI
    from PIL import Image

    from vthinker_plugins.vlmeval.datasets import judge_for

    prompt = tmp_path / "official_instruction_prompt.txt"
    prompt.write_text("OFFICIAL INSTRUCTION PROMPT {instruction}")
    monkeypatch.setenv("VTHINKER_JUDGE_PROMPT_INSTRUCTION", str(prompt))
    image = Image.new("RGB", (32, 32), "white")
    with FakeOpenAI() as server:  # nothing to draw and nothing drawn: the judge says 1
        calls = server.requests
        judge = judge_for({"model": "judge-vl", "api_base": f"{server.url}/chat/completions", "key": "x",
                           "retry": 0})

        async def ask() -> object:
            try:
                return await judge.judge_images("instruction", "Draw AB.", image, image, image)
            finally:
                await judge.aclose()

        result = asyncio.run(ask())
    assert result.ok and result.value == 1 and len(calls) == 1
    texts = [p["text"] for p in calls[0]["messages"][0]["content"] if p["type"] == "text"]
    assert "OFFICIAL INSTRUCTION PROMPT Draw AB." in texts


def test_bad_or_unreachable_data_is_one_line_before_vlmevalkit_starts(
    tmp_path: Path, main_bin: Path, harness_env: dict[str, str], mathvision_dir: Path
) -> None:
    """A missing TSV is built by the launcher first: no hub (offline, nothing cached) is one line naming
    the variable to set; a malformed row one line naming its file and row; neither a traceback."""
    from harness import run_command

    env = dict(harness_env, HF_HOME=str(tmp_path / "hf-home"), LMUData=str(tmp_path / "LMUData"))
    env.pop("VTHINKER_VTBENCH_DATA")
    cmd = [str(main_bin / "vthinker"), "vlmeval", "--model", "V-Thinker-7B", "--work-dir", str(tmp_path / "w")]
    run = run_command([*cmd, "--data", "VTBench_Reasoning"], env, tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.log, run.log[-3000:]
    assert "vthinker vlmeval: VTBench_Reasoning: cannot load We-Math/VTBench from the Hugging Face hub" in run.log
    assert "set VTHINKER_VTBENCH_DATA to a local copy" in run.log
    rows = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()[:2]]
    rows[0]["image"] = str(mathvision_dir / rows[0]["image"])
    del rows[1]["answer"]
    data = tmp_path / "testmini.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = run_command([*cmd, "--data", "VThinker_MathVision_MINI"], dict(env, VTHINKER_MATHVISION_DATA=str(data)),
                      tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.log, run.log[-3000:]
    assert f"vthinker vlmeval: VThinker_MathVision_MINI: {data} row 1 (line 2) (id={rows[1]['id']}): field " \
        "'answer' is empty" in run.log
    assert not (tmp_path / "LMUData" / "VThinker_MathVision_MINI.tsv").exists()


def test_unreachable_judge_is_reported_at_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    from vthinker_plugins.vlmeval.launcher import _warn_if_judge_unreachable

    _warn_if_judge_unreachable(argparse.Namespace(judge="judge-vl", judge_base_url="http://127.0.0.1:9/v1",
                                                  judge_key="x"))
    err = capsys.readouterr().err
    assert "vthinker vlmeval: WARNING: the judge judge-vl at http://127.0.0.1:9/v1 is unreachable (Connect" in err


def test_summary_says_why_accuracy_is_null() -> None:
    """Verdicts of a judge that failed on every drawing: VLMEvalKit's score file names the judge's error."""
    from vthinker_plugins.vlmeval.datasets import VTBenchDataset

    verdicts = [{"task": "vtbench_perception", "correct": None, "judge_status": "failed",
                 "judge_error": "APIConnectionError: Connection error."}] * 2
    summary = VTBenchDataset.summarize(VTBenchDataset.__new__(VTBenchDataset), verdicts)
    assert summary["Overall"] is None
    assert summary["note"] == ("accuracy is null: the judge failed on 2 of 2 row(s) (APIConnectionError: "
                               "Connection error.)")
