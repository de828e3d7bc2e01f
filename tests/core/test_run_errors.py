"""``vthinker run`` (subprocesses) on the mistakes a new user makes: each is one clear line, no traceback,
in seconds, and leaves no half-made run behind; a judge that is down is reported at the start and the
summary says why accuracy is null."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _fails(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 120) -> str:
    """Run a command that must fail with a message and no traceback; return its stderr."""
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("vthinker run:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@contextlib.contextmanager
def _silent_endpoint() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hub behind a dead proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_missing_model_path_is_one_line_and_leaves_no_run(tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    out = tmp_path / "o"
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench-reasoning", "--data", str(vtbench_file), "--output",
            str(out)]
    line = _fails([*base, "--model", str(tmp_path / "no" / "such-checkpoint")], cli_env, tmp_path)
    assert "no such checkpoint folder" in line and "such-checkpoint" in line
    assert not out.exists()
    (tmp_path / "empty").mkdir()
    line = _fails([*base, "--model", str(tmp_path / "empty")], cli_env, tmp_path)
    assert "is not a checkpoint folder (no config.json in it)" in line and not out.exists()
    # A folder with a config.json that does not load: the backend's error, still one line and no run left.
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    line = _fails([*base, "--model", str(tmp_path / "broken")], cli_env, tmp_path)
    assert f"cannot load the model {tmp_path / 'broken'}" in line and not out.exists()
    # A hub id with offline mode on and nothing cached.
    env = dict(cli_env, HF_HOME=str(tmp_path / "hf-home"))
    line = _fails([*base, "--model", "We-Math/V-Thinker"], env, tmp_path)
    assert "offline mode is on" in line and "We-Math/V-Thinker" in line and not out.exists()
    # The folder of an earlier run keeps its run.json as it was.
    subprocess.run([*base, "--model", "reference", "--limit", "1", "--no-report"], env=cli_env, cwd=tmp_path,
                   check=True, capture_output=True)
    before = (out / "run.json").read_text()
    _fails([*base, "--model", str(tmp_path / "missing")], cli_env, tmp_path)
    assert (out / "run.json").read_text() == before


def test_malformed_rows_name_the_file_and_row(tmp_path, vthinker_cmd, cli_env, mathvision_dir) -> None:
    folder = tmp_path / "mv"
    folder.mkdir()
    rows = [json.loads(line) for line in (mathvision_dir / "testmini.jsonl").read_text().splitlines()[:3]]
    for row in rows:
        row["image"] = str(mathvision_dir / row["image"])
    base = [*vthinker_cmd, "run", "--benchmark", "mathvision-testmini", "--data", str(folder), "--model",
            "reference", "--output", str(tmp_path / "o")]
    data = folder / "testmini.jsonl"
    data.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[1])[:-20] + "\n" + json.dumps(rows[2]) + "\n")
    line = _fails(base, cli_env, tmp_path)
    assert f"bad data: {data} line 2: not valid JSON" in line
    rows[2]["question"] = ""
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    line = _fails(base, cli_env, tmp_path)
    assert f"bad data: {data} row 2 (line 3) (id={rows[2]['id']}): field 'question' must be a non-empty" in line


def test_no_hub_access_fails_in_seconds_naming_the_data_variables(tmp_path, vthinker_cmd, cli_env) -> None:
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench", "--model", "reference", "--output", str(tmp_path / "o")]
    cli_env = {k: v for k, v in cli_env.items() if k != "VTHINKER_VTBENCH_DATA"}
    # Offline mode, nothing cached.
    line = _fails(cmd, dict(cli_env, HF_HOME=str(tmp_path / "hf-home")), tmp_path)
    assert "We-Math/VTBench" in line and "offline mode is on" in line
    assert "VTHINKER_VTBENCH_DATA" in line and "--data" in line
    # Online, but the hub endpoint never answers: the probe gives up after VTHINKER_HUB_TIMEOUT seconds
    # instead of the libraries' minutes of retries.
    with _silent_endpoint() as endpoint:
        env = dict(cli_env, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_ENDPOINT=endpoint,
                   VTHINKER_HUB_TIMEOUT="2", HF_HOME=str(tmp_path / "hf-home"))
        started = time.monotonic()
        line = _fails(cmd, env, tmp_path)
        elapsed = time.monotonic() - started
    assert f"cannot reach the Hugging Face hub to download We-Math/VTBench: {endpoint} did not answer within 2 s" \
        in line
    assert "VTHINKER_VTBENCH_DATA" in line and elapsed < 30, elapsed
    # The variable is what vthinker run reads when --data is not given.
    line = _fails(cmd, dict(cli_env, VTHINKER_VTBENCH_DATA=str(tmp_path / "nowhere.parquet")), tmp_path)
    assert "nowhere.parquet" in line


def test_unreachable_judge_is_reported_and_the_summary_says_why(tmp_path, vthinker_cmd, cli_env,
                                                                vtbench_file) -> None:
    out = tmp_path / "o"
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
           "reference", "--limit", "2", "--output", str(out), "--eval", "--judge-model", "judge-vl",
           "--judge-url", "http://127.0.0.1:9/v1"]
    env = dict(cli_env, VTHINKER_JUDGE_RETRIES="0", OPENAI_API_KEY="x")
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = proc.stderr.index("WARNING: the judge judge-vl at http://127.0.0.1:9/v1 is unreachable")
    assert warning < proc.stderr.index("vthinker run:  "), proc.stderr[:2000]  # before the progress bar
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["vtbench_perception"]["accuracy"] is None
    assert summary["metrics"]["vtbench_perception"]["judge_failed"] == 2
    (note,) = summary["notes"]
    assert note.startswith("vtbench_perception: accuracy is null: the judge failed on 2 of 2 row(s) (")
    assert "Connect" in note and "re-run the same command" in note
    assert f"note: {note}" in proc.stdout and "Note." in (out / "report.html").read_text()


def test_limit_is_per_task_and_a_rerun_without_eval_keeps_verdicts(tmp_path, vthinker_cmd, cli_env,
                                                                   vtbench_file) -> None:
    """``--limit 1`` on VTBench is one item of each task; rows scored by an --eval run keep their verdicts
    through a run without --eval that adds rows, and a later --eval scores only the new rows."""
    out = tmp_path / "o"
    base = [*vthinker_cmd, "run", "--benchmark", "vtbench", "--data", str(vtbench_file), "--model", "reference",
            "--output", str(out), "--no-report"]
    subprocess.run([*base, "--limit", "1", "--eval"], env=cli_env, cwd=tmp_path, check=True, capture_output=True)
    first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task"] for r in first) == ["vtbench_instruction", "vtbench_perception", "vtbench_reasoning"]
    assert all(r["correct"] is True for r in first)
    proc = subprocess.run([*base, "--limit", "2"], env=cli_env, cwd=tmp_path, check=True, capture_output=True,
                          text=True)
    assert "3 row(s) keep the verdicts of an earlier scoring" in proc.stdout
    rows = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert len(rows) == 6 and all(rows[r["id"]]["verdict"] == r["verdict"] for r in first)
    assert sum(r["verdict"] is None for r in rows.values()) == 3
    proc = subprocess.run([*base, "--limit", "2", "--eval"], env=cli_env, cwd=tmp_path, check=True,
                          capture_output=True, text=True)
    assert "3 row(s) re-scored with judge-free scoring" in proc.stdout
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["correct"] is True for r in rows)
