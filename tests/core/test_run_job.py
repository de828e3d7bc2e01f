"""``vthinker run`` as users run it (subprocesses): the built-in default, the tiny model on MathVision,
kill-and-resume, a scripted multi-round run, and the self-contained HTML report."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from PIL import Image


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


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run(cmd, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_default_run_writes_rows_summary_and_report_then_resumes(tmp_path, vthinker_cmd, cli_env) -> None:
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    out = tmp_path / "runs" / "default"
    rows = _rows(out / "results.jsonl")
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

    # Re-run: nothing to redo. Then an errored row is retried and a line cut by a kill is dropped.
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    assert "18 already done" in proc.stdout and len(_rows(out / "results.jsonl")) == 18
    broken = [dict(r, error="RuntimeError: backend crashed") if r["id"] == rows[4]["id"] else r for r in rows]
    text = "".join(json.dumps(r) + "\n" for r in broken) + '{"id": "vts-0-005_reas'
    (out / "results.jsonl").write_text(text)
    proc = _run([*vthinker_cmd, "run"], cli_env, tmp_path)
    assert "17 already done" in proc.stdout
    again = _rows(out / "results.jsonl")
    assert len(again) == 18 and len({r["id"] for r in again}) == 18 and all(r["error"] is None for r in again)
    assert again[-1]["id"] == rows[4]["id"]


def test_mathvision_tiny_model_killed_midway_resumes_without_duplicates(
    tmp_path, vthinker_cmd, cli_env, tiny_model_dir, mathvision_dir
) -> None:
    out = tmp_path / "mv"
    cmd = [*vthinker_cmd, "run", "--benchmark", "mathvision-testmini", "--data", str(mathvision_dir),
           "--model", str(tiny_model_dir), "--limit", "8", "--output", str(out), "--eval",
           "--max-new-tokens", "24", "--model-option", "max_batch_size=1", "--concurrency", "1"]
    proc = subprocess.Popen(cmd, env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = _rows(results) if results.exists() else []
    assert 1 <= len(first) < 8, f"kill landed after {len(first)} rows"

    proc = _run(cmd, cli_env, tmp_path)
    assert f"{len(first)} already done" in proc.stdout
    rows = _rows(results)
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
          "--model", str(tiny_model_dir), "--limit", "3", "--output", str(out), "--eval",
          "--model-option", f"script={script}", "--max-new-tokens", "200"], cli_env, tmp_path)
    rows = _rows(out / "results.jsonl")
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
    assert len(_rows(tmp_path / "o" / "results.jsonl")) == 3


def test_resume_refuses_other_scoring_settings(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """Rows finished without --eval have no verdict: resuming them with --eval (or with another judge)
    would report metrics over the newly scored rows only."""
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(vtbench_file),
            "--model", "reference", "--output", str(tmp_path / "o"), "--no-report"]
    _run([*base, "--limit", "2"], cli_env, tmp_path)
    assert all(r["verdict"] is None for r in _rows(tmp_path / "o" / "results.jsonl"))
    proc = subprocess.run([*base, "--eval"], env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "different run (eval: False -> True)" in proc.stderr
    _run([*base, "--eval", "--overwrite"], cli_env, tmp_path)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["metrics"]["vtbench_reasoning"]["n"] == 3
    proc = subprocess.run([*base, "--eval", "--judge-model", "judge-vl", "--judge-url", "http://127.0.0.1:9/v1"],
                          env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "judge_model: None -> 'judge-vl'" in proc.stderr


class _JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge on 127.0.0.1 that always answers 1 and keeps the requests."""

    calls: ClassVar[list[dict]] = []
    down = False  # answer 503 (a judge that is not up yet)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).calls.append(body)
        if type(self).down:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = json.dumps({"id": "j", "object": "chat.completion", "created": 0, "model": body.get("model"),
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": "1"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_judge_configured_by_the_environment(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """``VTHINKER_JUDGE_URL``/``VTHINKER_JUDGE_MODEL`` (README) judge the drawings of ``vthinker run``,
    with the official prompt from ``VTHINKER_JUDGE_PROMPT_<TASK>`` when set."""
    prompt = tmp_path / "official_perception_prompt.txt"
    prompt.write_text("OFFICIAL PERCEPTION PROMPT {question}")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(cli_env, VTHINKER_JUDGE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
               VTHINKER_JUDGE_MODEL="judge-vl", VTHINKER_JUDGE_PROMPT_PERCEPTION=str(prompt), OPENAI_API_KEY="x")
    try:
        _run([*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
              "reference", "--eval", "--limit", "2", "--output", str(tmp_path / "o"), "--no-report"], env, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    rows = _rows(tmp_path / "o" / "results.jsonl")
    assert [r["verdict"]["judge_status"] for r in rows] == ["ok", "ok"]
    assert len(_JudgeHandler.calls) == 2 and {c["model"] for c in _JudgeHandler.calls} == {"judge-vl"}
    texts = [p["text"] for c in _JudgeHandler.calls for p in c["messages"][0]["content"] if p["type"] == "text"]
    assert sum(t.startswith("OFFICIAL PERCEPTION PROMPT") for t in texts) == 2
    assert json.loads((tmp_path / "o" / "run.json").read_text())["judge_model"] == "judge-vl"


def test_rows_the_judge_failed_on_are_retried(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """A judge that was down leaves rows unscored (judge_failed); re-running the command judges them."""
    handler = type("Handler", (_JudgeHandler,), {"calls": [], "down": True})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(cli_env, VTHINKER_JUDGE_URL=f"http://127.0.0.1:{server.server_address[1]}/v1",
               VTHINKER_JUDGE_MODEL="judge-vl", VTHINKER_JUDGE_RETRIES="0", OPENAI_API_KEY="x")
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
           "reference", "--eval", "--limit", "2", "--output", str(tmp_path / "o"), "--no-report"]
    try:
        _run(cmd, env, tmp_path)
        rows = _rows(tmp_path / "o" / "results.jsonl")
        assert [(r["correct"], r["verdict"]["judge_status"]) for r in rows] == [(None, "failed")] * 2
        handler.down = False
        proc = _run(cmd, env, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert "0 already done" in proc.stdout
    rows = _rows(tmp_path / "o" / "results.jsonl")
    assert [(r["correct"], r["verdict"]["judge_status"]) for r in rows] == [(True, "ok")] * 2
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())["metrics"]["vtbench_perception"]
    assert summary["judge_failed"] == 0 and summary["scored"] == 2


def test_api_keys_stay_out_of_the_output_folder(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """``--model-option api_key=...`` identifies no run: it is not written to run.json (output folders
    get shared), and a new key does not block resuming."""
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(vtbench_file), "--model",
            "openai:served", "--model-option", "base_url=http://127.0.0.1:9/v1", "--model-option", "max_retries=0",
            "--limit", "1", "--output", str(tmp_path / "o"), "--no-report"]
    _run([*base, "--model-option", "api_key=sk-secret-1"], cli_env, tmp_path)
    assert "sk-secret" not in (tmp_path / "o" / "run.json").read_text()
    assert _rows(tmp_path / "o" / "results.jsonl")[0]["error"]  # nothing listens there: an error row
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
    rows = sorted(_rows(out / "results.jsonl"), key=lambda r: r["id"])  # rows are appended as samples finish
    check(rows)

    # An older run: the first row's images in the hash-less folder, the second row errored (to be retried).
    legacy = out / "images" / "a_b_reasoning"
    Path(out / rows[0]["input_images"][0]).parent.rename(legacy)
    old = json.loads(json.dumps(rows[0]).replace(Path(rows[0]["input_images"][0]).parent.as_posix(),
                                                  "images/a_b_reasoning"))
    (out / "results.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(dict(rows[1], error="boom")) + "\n")
    proc = _run(cmd, cli_env, tmp_path)
    assert "1 already done" in proc.stdout
    rows = sorted(_rows(out / "results.jsonl"), key=lambda r: r["id"])
    assert Path(rows[0]["input_images"][0]).parent.as_posix() == "images/a_b_reasoning"
    check(rows)
