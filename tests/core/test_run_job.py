"""``vthinker run`` as users run it (subprocesses): the built-in default, the tiny model on MathVision,
kill-and-resume, a scripted multi-round run, the self-contained HTML report, and re-scoring stored rows
(--eval or another judge added later, a judge that was down) without calling the model (a counting
OpenAI-compatible model server on 127.0.0.1)."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

from fake_openai import ChatRequest, FakeOpenAI
from PIL import Image
from run_helpers import kill_after_first_row, read_rows


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.sections = 0

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if tag == "section":
            self.sections += 1




def _run(cmd, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_default_run_writes_rows_summary_and_report_then_resumes(tmp_path, vthinker_cmd, cli_env) -> None:
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    out = tmp_path / "runs" / "default"
    rows = read_rows(out / "results.jsonl")
    assert len(rows) == 18 and len({r["id"] for r in rows}) == 18
    assert all(r["error"] is None and r["correct"] is True for r in rows), [r["id"] for r in rows if not r["correct"]]
    assert (out / "data" / "vtbench_sample.parquet").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["oracle"] is True and summary["n_done"] == 18 and summary["n_errors"] == 0
    for task in ("vtbench_perception", "vtbench_instruction", "vtbench_reasoning"):
        assert summary["metrics"][task]["accuracy"] == 1.0
    reasoning = next(r for r in rows if r["task"] == "vtbench_reasoning")
    assert reasoning["n_tool_calls"] == 2 and len(reasoning["rounds"]) == 3
    assert all((out / p).exists() for rnd in reasoning["rounds"] for p in rnd["images"])

    # The report is self-contained: every image is an embedded PNG that decodes.
    html = (out / "report.html").read_text()
    parser = _Images()
    parser.feed(html)
    assert parser.sections == 18
    n_expected = sum(len(r["input_images"]) + sum(len(rd["images"]) for rd in r["rounds"]) +
                     bool(r.get("annotation_image")) for r in rows)
    assert len(parser.srcs) == n_expected and n_expected >= 18 * 2
    assert all(src.startswith("data:image/png;base64,") for src in parser.srcs)
    decoded = Image.open(io.BytesIO(base64.b64decode(parser.srcs[1].split(",", 1)[1])))
    assert decoded.size == (480, 400)
    assert "Oracle run" in html and "[oracle]" in html and "<code>" not in html.replace("&lt;code&gt;", "")
    # --report-images links: the page only points at the image files beside it.
    _run([*vthinker_cmd, "run", "--report-images", "links"], cli_env, tmp_path)
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert len(parser.srcs) == n_expected and all((out / src).is_file() for src in parser.srcs)

    # Re-run: nothing to redo. Then an errored row is retried and a line cut by a kill is dropped.
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    assert "18 already done" in proc.stdout and len(read_rows(out / "results.jsonl")) == 18
    broken = [dict(r, error="RuntimeError: backend crashed") if r["id"] == rows[4]["id"] else r for r in rows]
    text = "".join(json.dumps(r) + "\n" for r in broken) + '{"id": "vts-0-005_reas'
    (out / "results.jsonl").write_text(text)
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    assert "17 already done" in proc.stdout
    again = read_rows(out / "results.jsonl")
    assert len(again) == 18 and len({r["id"] for r in again}) == 18 and all(r["error"] is None for r in again)
    assert again[-1]["id"] == rows[4]["id"]


def test_mathvision_tiny_model_killed_midway_resumes_without_duplicates(
    tmp_path, vthinker_cmd, cli_env, tiny_model_dir, mathvision_dir
) -> None:
    out = tmp_path / "mv"
    cmd = [*vthinker_cmd, "run", "--benchmark", "mathvision-testmini", "--data", str(mathvision_dir),
           "--model", str(tiny_model_dir), "--limit", "8", "--output", str(out), "--eval",
           "--max-new-tokens", "24", "--model-option", "max_batch_size=1", "--concurrency", "1"]
    results = out / "results.jsonl"
    first = kill_after_first_row(cmd, cli_env, tmp_path, results)
    assert 1 <= len(first) < 8, f"kill landed after {len(first)} rows"

    proc = _run(cmd, cli_env, tmp_path)
    assert f"{len(first)} already done" in proc.stdout
    rows = read_rows(results)
    assert [r["id"] for r in rows][: len(first)] == [r["id"] for r in first]
    assert sorted(r["id"] for r in rows) == sorted(["4", "5", "6", "7", "8", "10", "11", "16"])
    assert all(r["task"] == "mathvision" and r["verdict"] is not None for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_done"] == 8 and summary["metrics"]
    assert (out / "report.html").stat().st_size > 0


def test_scripted_tiny_model_run_in_a_subprocess(tmp_path, vthinker_cmd, cli_env, tiny_model_dir,
                                                 mathvision_dir) -> None:
    script = tmp_path / "script.jsonl"
    code = ("<think>Zoom on the top-left corner.\n<code>\n```python\nimg = Image.open(image_path)\n"
            "img.crop((0, 0, 64, 64)).save(processed_path)\nprint(processed_path)\n```\n</code>")
    script.write_text(json.dumps({"id": "*", "rounds": [code, "It is clear now.</think><answer>{answer}</answer>"]}))
    out = tmp_path / "scripted"
    _run([*vthinker_cmd, "run", "--benchmark", "mathvision-testmini", "--data", str(mathvision_dir),
          "--model", f"scripted:{tiny_model_dir}", "--limit", "3", "--output", str(out), "--eval",
          "--model-option", f"script={script}", "--max-new-tokens", "200"], cli_env, tmp_path)
    rows = read_rows(out / "results.jsonl")
    assert len(rows) == 3
    for row in rows:
        assert row["error"] is None and row["n_tool_calls"] == 1 and row["n_tool_errors"] == 0
        assert row["prediction"] == row["gold"] and row["correct"] is True
        assert Image.open(out / row["rounds"][0]["images"][0]).size == (64, 64)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_tool_calls"] == 3
    assert "3/3" in json.dumps(summary["metrics"])


def test_bad_arguments_fail_clearly(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    proc = subprocess.run([*vthinker_cmd, "run", "--benchmark", "mathvision-testmini"], env=cli_env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--model is required" in proc.stderr
    proc = subprocess.run([*vthinker_cmd, "run", "--benchmark", "mathvision", "--data", str(tmp_path / "nowhere"),
                           "--model", "reference"], env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "bad data" in proc.stderr and "nowhere" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Resuming into a folder of another run's results is refused instead of mixing them.
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(vtbench_file),
            "--output", str(tmp_path / "o"), "--no-report"]
    _run([*base, "--model", "reference", "--limit", "1"], cli_env, tmp_path)
    proc = subprocess.run([*base, "--model", "reference", "--max-rounds", "2"], env=cli_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "different run (max_rounds: None -> 2)" in proc.stderr
    _run([*base, "--model", "reference", "--max-rounds", "2", "--overwrite"], cli_env, tmp_path)
    assert len(read_rows(tmp_path / "o" / "results.jsonl")) == 3


#: The VTBench perception item the served model draws right (its reference code); it draws the other one wrong.
RIGHT_ID, WRONG_ID = "vts-0-000_perception", "vts-0-001_perception"


def _served_model(vtbench_file: Path) -> FakeOpenAI:
    """A model served over the OpenAI API on 127.0.0.1 (the suite's fake server; ``.requests`` counts its calls):
    the first step draws in a code cell -- the right marks (the reference code) for the first VTBench row's
    perception question, a circle in the corner (wrong) for any other -- and the continuation answers."""
    import pandas as pd

    first = pd.read_parquet(vtbench_file, columns=["question_perception", "code_perception"]).iloc[0]
    corner = ("from PIL import ImageDraw\nimg = Image.open(image_path).convert('RGB')\n"
              "ImageDraw.Draw(img).ellipse((8, 8, 40, 40), outline=(255, 0, 0), width=4)\n"
              "img.save(processed_path)\nprint(processed_path)\n")

    def reply(request: ChatRequest) -> str:
        if request["messages"][-1]["role"] == "assistant":
            return "Drawn.</think><answer>done</answer>"
        code = first["code_perception"] if first["question_perception"] in request.text else corner
        return f"<think>Mark the points.\n<code>\n```python\n{code}```\n</code>"

    return FakeOpenAI(reply)


def _served_model_cmd(vthinker_cmd: list[str], url: str, data: Path, out: Path) -> list[str]:
    """``vthinker run`` of two VTBench perception items with the model behind ``url`` (no retries, so a
    call to a server that is down is an error row, never a silent success)."""
    return [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(data), "--model", "openai:served",
            "--model-option", f"base_url={url}", "--model-option", "max_retries=0", "--limit", "2",
            "--output", str(out), "--no-report"]


def _generated(row: dict) -> dict:
    """What generation wrote into a row (re-scoring must leave it as it is)."""
    return {k: row[k] for k in ("id", "text", "prediction", "rounds", "stop_reason", "gen_s", "tool_s",
                                "input_images", "error")}


def test_eval_added_later_rescores_stored_rows_without_calling_the_model(
    tmp_path, vthinker_cmd, cli_env, vtbench_file
) -> None:
    """Rows generated without --eval are scored by a re-run with --eval (then with a judge) from their stored
    text and drawings -- the model server, answering 503 by then, is never called -- with the verdicts that
    scoring during generation gives; a changed generation setting is still refused."""
    model, judge = _served_model(vtbench_file), FakeOpenAI()
    out = tmp_path / "o"
    base = _served_model_cmd(vthinker_cmd, model.url, vtbench_file, out)
    try:
        _run(base, cli_env, tmp_path)
        first = read_rows(out / "results.jsonl")
        assert len(first) == 2 and all(r["verdict"] is None and r["error"] is None for r in first)
        assert all(len(r["rounds"][0]["images"]) == 1 for r in first)
        n_calls = len(model.requests)
        assert n_calls >= 2
        model.status = 503  # from here on a generation would be an error row (and a counted call)

        proc = _run([*base, "--eval"], cli_env, tmp_path)
        assert "2 already done" in proc.stdout
        assert "2 row(s) re-scored with judge-free scoring, 0 re-judged, 0 regenerated" in proc.stdout
        assert len(model.requests) == n_calls
        rows = read_rows(out / "results.jsonl")
        assert [_generated(r) for r in rows] == [_generated(r) for r in first]
        assert all(r["verdict"]["pixel"]["f1"] is not None and r["correct"] is not None for r in rows)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["this_run"] == {"generated": 0, "rescored": 2, "rejudged": 0, "regenerated": 0}
        metrics = summary["metrics"]["vtbench_perception"]
        assert metrics["n"] == 2 and metrics["scored"] == 2 and metrics["pixel_n"] == 2

        # The verdicts are those of a run that scored while generating (same model replies, same drawings).
        model.status = None
        _run([*_served_model_cmd(vthinker_cmd, model.url, vtbench_file, tmp_path / "live"), "--eval"], cli_env,
             tmp_path)
        live = sorted(read_rows(tmp_path / "live" / "results.jsonl"), key=lambda r: r["id"])
        assert [r["verdict"] for r in live] == [r["verdict"] for r in sorted(rows, key=lambda r: r["id"])]
        model.status = 503
        n_calls = len(model.requests)

        # Another judge: every row is judged, still without the model.
        proc = _run([*base, "--eval", "--judge-model", "judge-vl", "--judge-url", judge.url],
                    dict(cli_env, OPENAI_API_KEY="x"), tmp_path)
        assert f"2 row(s) re-scored with judge judge-vl at {judge.url}" in proc.stdout
        assert len(model.requests) == n_calls and len(judge.requests) == 2
        rows = read_rows(out / "results.jsonl")
        assert [_generated(r) for r in rows] == [_generated(r) for r in first]
        # The judge looked at the drawings: the right marks pass, the corner circle does not.
        assert sorted((r["id"], r["correct"], r["verdict"]["judge"], r["verdict"]["judge_status"]) for r in rows) == [
            (RIGHT_ID, True, 1, "ok"), (WRONG_ID, False, 0, "ok")]
        assert json.loads((out / "summary.json").read_text())["metrics"]["vtbench_perception"]["accuracy"] == 0.5
        assert json.loads((out / "run.json").read_text())["judge_model"] == "judge-vl"

        # A generation setting may not change: refused, the rows untouched.
        before = (out / "results.jsonl").read_text()
        proc = subprocess.run([*base, "--eval", "--temperature", "0.5"], env=cli_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "different run (temperature: 0.0 -> 0.5)" in proc.stderr
        assert (out / "results.jsonl").read_text() == before and len(model.requests) == n_calls
    finally:
        model.close()
        judge.close()


def test_killed_while_rescoring_leaves_the_results_as_they_were(tmp_path, vthinker_cmd, cli_env,
                                                                 vtbench_file) -> None:
    """Re-scoring rewrites results.jsonl in one atomic step after every row is scored: a kill while the judge
    is answering leaves the earlier rows and run.json as they were, and the next run re-scores them."""
    judge = FakeOpenAI(delay=60.0)
    out = tmp_path / "o"
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
            "reference", "--limit", "2", "--output", str(out), "--no-report", "--eval"]
    cmd = [*base, "--judge-model", "judge-vl", "--judge-url", judge.url]
    env = dict(cli_env, OPENAI_API_KEY="x")
    try:
        _run(base, cli_env, tmp_path)
        before, run_before = (out / "results.jsonl").read_text(), (out / "run.json").read_text()
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not judge.requests:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert judge.requests, "the kill landed before re-scoring began"
        assert (out / "results.jsonl").read_text() == before and (out / "run.json").read_text() == run_before
        judge.delay = 0.0
        proc = _run(cmd, env, tmp_path)
    finally:
        judge.close()
    assert "2 already done" in proc.stdout and "2 row(s) re-scored with judge judge-vl" in proc.stdout
    rows = read_rows(out / "results.jsonl")
    assert len({r["id"] for r in rows}) == len(rows) == 2
    assert [r["verdict"]["judge_status"] for r in rows] == ["ok", "ok"]


def test_old_run_json_without_scoring_keys_resumes_by_rescoring(tmp_path, vthinker_cmd, cli_env,
                                                                vtbench_file) -> None:
    """An output folder written before run.json recorded the scoring settings (and before rows named theirs)
    resumes: its rows are re-scored; a row whose stored drawing is gone is generated again, and said so."""
    out = tmp_path / "o"
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
           "reference", "--limit", "3", "--output", str(out), "--no-report", "--eval"]
    _run(cmd, cli_env, tmp_path)
    first = read_rows(out / "results.jsonl")
    run = json.loads((out / "run.json").read_text())
    for key in ("eval", "judge_model", "judge_url", "judge_prompts", "pixel_metric"):
        del run[key]
    (out / "run.json").write_text(json.dumps(run))
    old = [{k: v for k, v in dict(r, verdict=None, correct=None).items() if k != "scored_with"} for r in first]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (out / first[1]["rounds"][0]["images"][0]).unlink()

    proc = _run(cmd, cli_env, tmp_path)
    assert "2 already done" in proc.stdout
    assert ("2 row(s) re-scored with judge-free scoring, 0 re-judged, 1 regenerated "
            "(1 lacked their stored text or images)") in proc.stdout
    rows = read_rows(out / "results.jsonl")
    assert [r["id"] for r in rows] == [first[0]["id"], first[2]["id"], first[1]["id"]]  # the regenerated one last
    assert [_generated(r) for r in rows[:2]] == [_generated(first[0]), _generated(first[2])]
    assert [r["verdict"] for r in rows[:2]] == [first[0]["verdict"], first[2]["verdict"]]
    assert all(r["correct"] is True for r in rows) and (out / rows[2]["rounds"][0]["images"][0]).exists()
    assert len({r["scored_with"] for r in rows}) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"] == {"generated": 1, "rescored": 2, "rejudged": 0, "regenerated": 1}
    assert summary["metrics"]["vtbench_perception"]["n"] == 3
    assert json.loads((out / "run.json").read_text())["eval"] is True
    proc = _run(cmd, cli_env, tmp_path)  # now nothing is left to do
    assert "3 already done" in proc.stdout and "re-scored" not in proc.stdout
    assert read_rows(out / "results.jsonl") == rows
    # Without --eval the stored verdicts stay (no metrics, and the summary says why); nothing is generated,
    # and run.json still records the scoring they came from, so adding --eval again has nothing to redo.
    proc = _run(cmd[:-1], cli_env, tmp_path)
    assert "3 row(s) keep the verdicts of an earlier scoring" in proc.stdout and "re-scored" not in proc.stdout
    assert read_rows(out / "results.jsonl") == rows
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] is None and summary["this_run"]["generated"] == 0
    assert summary["notes"] == ["metrics are null: scoring is off (run the same command with --eval to score "
                                "the stored rows)"]
    assert json.loads((out / "run.json").read_text())["eval"] is True
    proc = _run(cmd, cli_env, tmp_path)
    assert "3 already done" in proc.stdout and "re-scored" not in proc.stdout
    # --clear-verdicts clears them: the rows follow the current settings, nothing generated.
    proc = _run([*cmd[:-1], "--clear-verdicts"], cli_env, tmp_path)
    assert ("3 row(s) re-scored with scoring off (verdicts cleared, --clear-verdicts), 0 re-judged, "
            "0 regenerated") in proc.stdout
    unscored = read_rows(out / "results.jsonl")
    assert [_generated(r) for r in unscored] == [_generated(r) for r in rows]
    assert all(r["verdict"] is None and r["correct"] is None for r in unscored)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] is None and summary["this_run"]["generated"] == 0
    assert json.loads((out / "run.json").read_text())["eval"] is False


def test_judge_configured_by_the_environment(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """``VTHINKER_JUDGE_URL``/``VTHINKER_JUDGE_MODEL`` (README) judge the drawings of ``vthinker run``,
    with the official prompt from ``VTHINKER_JUDGE_PROMPT_<TASK>`` when set."""
    prompt = tmp_path / "official_perception_prompt.txt"
    prompt.write_text("OFFICIAL PERCEPTION PROMPT {question}")
    server = FakeOpenAI()
    env = dict(cli_env, VTHINKER_JUDGE_URL=server.url,
               VTHINKER_JUDGE_MODEL="judge-vl", VTHINKER_JUDGE_PROMPT_PERCEPTION=str(prompt), OPENAI_API_KEY="x")
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
           "reference", "--eval", "--limit", "2", "--output", str(tmp_path / "o"), "--no-report"]
    try:
        _run(cmd, env, tmp_path)
        rows = read_rows(tmp_path / "o" / "results.jsonl")
        assert [r["verdict"]["judge_status"] for r in rows] == ["ok", "ok"]
        assert len(server.requests) == 2 and {c["model"] for c in server.requests} == {"judge-vl"}
        texts = [p["text"] for c in server.requests for p in c["messages"][0]["content"] if p["type"] == "text"]
        assert sum(t.startswith("OFFICIAL PERCEPTION PROMPT") for t in texts) == 2
        assert json.loads((tmp_path / "o" / "run.json").read_text())["judge_model"] == "judge-vl"

        # A revised prompt file is another scoring: the stored rows are judged again with it.
        prompt.write_text("REVISED PERCEPTION PROMPT {question}")
        proc = _run(cmd, env, tmp_path)
    finally:
        server.close()
    assert "2 row(s) re-scored with judge judge-vl at" in proc.stdout and "prompt files for perception" in proc.stdout
    texts = [p["text"] for c in server.requests[2:] for p in c["messages"][0]["content"] if p["type"] == "text"]
    assert len(server.requests) == 4 and sum(t.startswith("REVISED PERCEPTION PROMPT") for t in texts) == 2
    assert [r["verdict"]["judge_status"] for r in read_rows(tmp_path / "o" / "results.jsonl")] == ["ok", "ok"]


def test_rows_the_judge_failed_on_are_rejudged_without_generating_again(
    tmp_path, vthinker_cmd, cli_env, vtbench_file
) -> None:
    """A judge that was down leaves rows unscored (judge_failed); re-running the command judges them from the
    stored text and drawings: the model server, down by then, is not called."""
    judge = FakeOpenAI()
    judge.status = 503  # a judge that is not up yet
    model = _served_model(vtbench_file)
    env = dict(cli_env, VTHINKER_JUDGE_URL=judge.url, VTHINKER_JUDGE_MODEL="judge-vl", VTHINKER_JUDGE_RETRIES="0",
               OPENAI_API_KEY="x")
    out = tmp_path / "o"
    cmd = [*_served_model_cmd(vthinker_cmd, model.url, vtbench_file, out), "--eval"]
    try:
        _run(cmd, env, tmp_path)
        first = read_rows(out / "results.jsonl")
        assert [(r["correct"], r["verdict"]["judge_status"]) for r in first] == [(None, "failed")] * 2
        assert all(r["rounds"][0]["images"] for r in first)  # each drew an image, the judge never saw it
        n_model_calls, n_judge_calls = len(model.requests), len(judge.requests)
        assert n_model_calls >= 2 and n_judge_calls == 2
        judge.status, model.status = None, 503
        proc = _run(cmd, env, tmp_path)
    finally:
        judge.close()
        model.close()
    assert "2 already done" in proc.stdout
    assert "0 row(s) re-scored with judge judge-vl" in proc.stdout and "2 re-judged, 0 regenerated" in proc.stdout
    assert len(model.requests) == n_model_calls  # no generation
    assert len(judge.requests) == n_judge_calls + 2
    rows = read_rows(out / "results.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in first]
    # The judge's verdicts on the stored drawings reach the rows: the right marks pass, the corner circle does not.
    assert sorted((r["id"], r["correct"], r["verdict"]["judge_status"]) for r in rows) == [
        (RIGHT_ID, True, "ok"), (WRONG_ID, False, "ok")]
    assert [_generated(r) for r in rows] == [_generated(r) for r in first]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"] == {"generated": 0, "rescored": 0, "rejudged": 2, "regenerated": 0}
    metrics = summary["metrics"]["vtbench_perception"]
    assert metrics["judge_failed"] == 0 and metrics["scored"] == 2 and metrics["judge_ok"] == 2
    assert metrics["accuracy"] == 0.5  # the true share of right drawings


def test_api_keys_stay_out_of_the_output_folder(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """``--model-option api_key=...`` identifies no run: it is not written to run.json (output folders
    get shared), and a new key does not block resuming."""
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(vtbench_file), "--model",
            "openai:served", "--model-option", "base_url=http://127.0.0.1:9/v1", "--model-option", "max_retries=0",
            "--limit", "1", "--output", str(tmp_path / "o"), "--no-report"]
    _run([*base, "--model-option", "api_key=sk-secret-1"], cli_env, tmp_path)
    assert "sk-secret" not in (tmp_path / "o" / "run.json").read_text()
    assert read_rows(tmp_path / "o" / "results.jsonl")[0]["error"]  # nothing listens there: an error row
    proc = _run([*base, "--model-option", "api_key=sk-secret-2"], cli_env, tmp_path)
    assert "0 already done" in proc.stdout  # the errored row is retried under the new key
    assert "sk-secret" not in (tmp_path / "o" / "run.json").read_text()


def test_ids_differing_in_punctuation_keep_their_own_images(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """``a/b`` and ``a:b`` made file-system safe are both ``a_b``: each still gets its own image folder, and a
    retried sample never deletes another's images (also in a run written before folders carried a hash)."""
    import pandas as pd

    frame = pd.read_parquet(vtbench_file).head(2)
    frame["id"] = ["a/b", "a:b"]
    data = tmp_path / "colliding.parquet"
    frame.to_parquet(data)
    sources = [Image.open(io.BytesIO(img["bytes"])).convert("RGB") for img in frame["image"]]
    assert sources[0].tobytes() != sources[1].tobytes()
    out = tmp_path / "o"
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(data), "--model", "reference",
           "--output", str(out), "--no-report"]

    def check(rows: list[dict]) -> None:
        assert [r["id"] for r in rows] == ["a/b_reasoning", "a:b_reasoning"]
        folders = [Path(r["input_images"][0]).parent for r in rows]
        assert folders[0] != folders[1]
        for row, source in zip(rows, sources, strict=True):
            assert Image.open(out / row["input_images"][0]).convert("RGB").tobytes() == source.tobytes()
            assert all((out / p).exists() for rnd in row["rounds"] for p in rnd["images"])

    _run(cmd, cli_env, tmp_path)
    rows = sorted(read_rows(out / "results.jsonl"), key=lambda r: r["id"])  # rows are appended as samples finish
    check(rows)

    # An older run: the first row's images in the hash-less folder, the second row errored (to be retried).
    legacy = out / "images" / "a_b_reasoning"
    Path(out / rows[0]["input_images"][0]).parent.rename(legacy)
    old = json.loads(json.dumps(rows[0]).replace(Path(rows[0]["input_images"][0]).parent.as_posix(),
                                                  "images/a_b_reasoning"))
    (out / "results.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(dict(rows[1], error="boom")) + "\n")
    proc = _run(cmd, cli_env, tmp_path)
    assert "1 already done" in proc.stdout
    rows = sorted(read_rows(out / "results.jsonl"), key=lambda r: r["id"])
    assert Path(rows[0]["input_images"][0]).parent.as_posix() == "images/a_b_reasoning"
    check(rows)
