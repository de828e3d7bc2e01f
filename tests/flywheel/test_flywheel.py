"""The flywheel end to end: a real HTTP server on 127.0.0.1 answering like an LLM (fake_llm.py), the real
sandbox, the real converter and the real llamafactory-cli; repair loops, bad output, resume after
kill -9, sharding and merge, the offline default."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fake_llm import FaultyServer, run_args, task_records
from PIL import Image

from vthinker_plugins.cli import main as vthinker
from vthinker_plugins.data.interaction import COLUMNS as INTERACTION_COLUMNS
from vthinker_plugins.data.perception import COLUMNS as PERCEPTION_COLUMNS
from vthinker_plugins.protocol import check_format, parse_code_blocks

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "llamafactory_configs" / "smoke"


def png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def statuses(out: Path) -> dict[str, str]:
    return {rid: r["status"] if r["status"] != "rejected" else f"rejected:{r['reason']}"
            for rid, r in task_records(out).items()}


def requests_of(server: FaultyServer, task: str, kind: str) -> list[dict]:
    return [r for r in server.log if r["task"] == task and r["kind"] == kind]


# --------------------------------------------------------------------------- knowledge points to training

def test_full_run_to_accepted_rows_converter_and_stage2_training(llm, tmp_path, run_lf, lf_env, tiny_model_dir):
    out = tmp_path / "fw"
    assert vthinker(run_args(llm, out, "--num", "4")) == 0
    records = task_records(out)
    accepted = sorted(rid for rid, r in records.items() if r["status"] == "accepted")
    assert len(accepted) >= 4 and {records[r]["level"] for r in accepted} == {1, 2}
    assert {records[r]["strategy"] for r in accepted} == {"base", "parallel", "sequential"}
    for r in records.values():
        assert r["status"] in ("accepted", "rejected") and r["points"] and r["point_paths"]
        if r["strategy"] != "base":  # a variant is one level above its accepted parent
            parent = records[r["parent"]]
            assert parent["status"] == "accepted" and r["level"] == parent["level"] + 1

    # The requests: the generator was asked about the task's knowledge points; the checker saw both images.
    first = requests_of(llm, "fw0-000000", "write a problem")[0]
    assert records["fw0-000000"]["point_paths"][0] in first["text"] and first["images"] == 0
    checks = requests_of(llm, "fw0-000000", "check a problem")
    assert len(checks) == 1 and checks[0]["images"] == 2
    sequential = requests_of(llm, "fw0-000000.s", "write a problem")[0]["text"]
    assert "sequential expansion" in sequential and records["fw0-000000"]["problem"]["answer"] in sequential

    # Rows in the hub schema, with real rendered and edited images.
    table = pq.read_table(out / "interaction")
    assert table.column_names == list(INTERACTION_COLUMNS)
    rows = sorted(table.to_pylist(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == accepted
    for row in rows:
        image, edited = png(row["image"]["bytes"]), png(row["edited_image"]["bytes"])
        assert image.shape == edited.shape and image.std() > 10 and (image != edited).any()
        assert parse_code_blocks(row["CoT_with_code"])[0].code.strip() == row["tool_code"].strip()
        assert check_format(row["CoT_with_code"]).ok and row["answer"] == records[row["id"]]["problem"]["answer"]
    perception = pq.read_table(out / "perception")
    assert perception.column_names == list(PERCEPTION_COLUMNS) and perception.num_rows >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] == len(accepted) and summary["complete"]
    assert summary["outputs"]["interaction_rows"] == len(accepted)
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 2 * len(records) and all(rid in report for rid in records)

    # The existing converter takes the rows unchanged (and re-running each tool code reproduces its image) ...
    lf = tmp_path / "lf"
    assert vthinker(["convert", "interaction", "--source", str(out / "interaction"), "--out", str(lf), "--verify",
                     "--no-progress"]) == 0
    converted = json.loads((lf / "reports" / "v_interaction" / "summary.json").read_text())
    assert converted["written"] == len(accepted) and converted["excluded"] == 0
    assert vthinker(["convert", "perception", "--source", str(out / "perception"), "--out", str(lf),
                     "--no-progress"]) == 0
    assert json.loads((lf / "reports" / "v_perception" / "summary.json").read_text())["excluded"] == 0
    # ... and LlamaFactory stage 2 trains on them.
    train = tmp_path / "train"
    log = run_lf(["train", str(SMOKE / "stage2_cpu.yaml"), f"model_name_or_path={tiny_model_dir}",
                  f"dataset_dir={lf}", f"output_dir={train}"], lf_env, cwd=ROOT)
    state = json.loads((train / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 2 and all(np.isfinite(losses)) and "</code>\n<sandbox_output>" in log


# --------------------------------------------------------------------------- checker-repairer

def test_repair_loops_record_every_verdict_and_repair(llm, tmp_path):
    llm.faults.update({"fw0-000000": "crash_once", "fw0-000001": "wrong_answer_once", "fw0-000002": "malformed_once",
                       "fw0-000003": "blank", "fw0-000004": "contradict"})
    out = tmp_path / "fw"
    assert vthinker(run_args(llm, out, "--num", "5", "--expand", "none", "--max-repairs", "2")) == 0
    r = task_records(out)

    crash = r["fw0-000000"]
    assert crash["status"] == "accepted" and crash["repaired"] and crash["n_attempts"] == 2
    assert [a["verdict"].get("reason") for a in crash["attempts"]] == ["image_code_crashed", None]
    assert "RuntimeError: the figure code broke" in crash["attempts"][0]["verdict"]["detail"]
    repair = requests_of(llm, "fw0-000000", "repair a problem")
    assert len(repair) == 1 and "the figure code broke" in repair[0]["text"]
    assert "raise RuntimeError" in repair[0]["text"]  # the failed problem itself is shown

    wrong = r["fw0-000001"]
    assert wrong["status"] == "accepted" and wrong["repaired"]
    first = wrong["attempts"][0]
    assert first["verdict"]["reason"] == "checker_inconsistent" and first["checker"]["consistent"] is False
    assert [c["name"] for c in first["checks"]] == ["question", "answer", "drawing_step", "image_code", "image",
                                                     "tool_code", "edited_image", "trajectory"]
    assert all(c["ok"] for c in first["checks"]) and first["images"]["image"] and first["images"]["edited_image"]
    repair = requests_of(llm, "fw0-000001", "repair a problem")[0]
    assert "checker:" in repair["text"] and repair["images"] == 2  # the repairer saw what the attempt drew

    unreadable = r["fw0-000002"]
    assert unreadable["status"] == "accepted" and unreadable["attempts"][0]["verdict"]["reason"] == "malformed_json"
    assert unreadable["attempts"][0]["raw"].startswith("Sure! Here is the problem")
    assert "could not be read" in requests_of(llm, "fw0-000002", "repair a problem")[0]["text"]

    blank = r["fw0-000003"]
    assert (blank["status"], blank["reason"], blank["n_attempts"]) == ("rejected", "blank_image", 3)
    assert [a["stage"] for a in blank["attempts"]] == ["generate", "repair", "repair"]
    contradict = r["fw0-000004"]
    assert (contradict["status"], contradict["reason"]) == ("rejected", "answer_contradicts_checker")
    assert "a quite different answer" in contradict["detail"]

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["accepted"], summary["repaired"], summary["rejected"]) == (3, 3, 2)
    assert summary["rejected_by_reason"] == {"blank_image": 1, "answer_contradicts_checker": 1}
    assert pq.read_table(out / "interaction").num_rows == 3
    report = (out / "report.html").read_text()
    assert "accepted after repair" in report and "blank_image" in report and "unreadable reply" in report


def test_bad_llm_output_is_a_recorded_rejection_and_errors_are_retried(llm, tmp_path):
    faults = ["malformed", "crash", "hang", "huge", "unchanged", "http500_twice", "timeout_once", "down",
              "checker_garbage"]
    llm.faults.update({f"fw0-{i:06d}": kind for i, kind in enumerate(faults)})
    out = tmp_path / "fw"
    args = run_args(llm, out, "--num", str(len(faults)), "--expand", "none", "--max-repairs", "1",
                    "--cell-timeout", "1.5")
    assert vthinker(args) == 0
    r = task_records(out)
    got = {llm.faults[rid]: (rec["status"], rec["reason"]) for rid, rec in r.items()}
    assert got == {
        "malformed": ("rejected", "malformed_json"),
        "crash": ("rejected", "image_code_crashed"),
        "hang": ("rejected", "image_code_timed_out"),
        "huge": ("rejected", "image_too_large"),
        "unchanged": ("rejected", "edited_image_unchanged"),
        "http500_twice": ("accepted", ""),
        "timeout_once": ("accepted", ""),
        "down": ("error", "generator_unavailable"),
        "checker_garbage": ("error", "checker_unavailable"),
    }
    assert r["fw0-000005"]["attempts"][0]["llm_attempts"] == 3  # two HTTP 500s, then an answer
    assert r["fw0-000006"]["attempts"][0]["llm_attempts"] == 2  # one timeout, then an answer
    assert "3000x3000" in r["fw0-000003"]["detail"] and "InternalServerError" in r["fw0-000007"]["detail"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 2 and not summary["complete"]
    assert summary["this_run"]["llm"]["generator"]["http_error"] >= 5

    # The endpoint recovers: a re-run does the two errored tasks again and nothing else.
    before = {rid: rec["time"] for rid, rec in r.items()}
    llm.reset()
    assert vthinker(args) == 0
    again = task_records(out)
    assert again["fw0-000007"]["status"] == again["fw0-000008"]["status"] == "accepted"
    assert {rid for rid, rec in again.items() if rec["time"] != before[rid]} == {"fw0-000007", "fw0-000008"}
    assert {t["task"] for t in llm.log} == {"fw0-000007", "fw0-000008"}
    assert json.loads((out / "summary.json").read_text())["complete"]


# --------------------------------------------------------------------------- resume, shards, merge

def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path):
    reference = tmp_path / "reference"
    with FaultyServer() as fast:
        assert vthinker(run_args(fast, reference, "--num", "8")) == 0
    out = tmp_path / "killed"
    with FaultyServer(latency_s=0.15) as slow:
        cmd = [sys.executable, "-m", "vthinker_plugins.cli", *run_args(slow, out, "--num", "8", "--concurrency", "2")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        records = out / "records.jsonl"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if records.exists() and len(records.read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        n_killed = len(records.read_text().splitlines())
        assert 4 <= n_killed < len(task_records(reference))
        assert not (out / "summary.json").exists()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "8 base task(s) (" in done.stderr and "already done" in done.stderr
    assert statuses(out) == statuses(reference)  # every task once, with the same outcome as an uninterrupted run
    killed, ref = task_records(out), task_records(reference)
    assert all(killed[rid]["problem"] == ref[rid]["problem"] for rid in ref)
    ids = pq.read_table(out / "interaction").column("id").to_pylist()
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(pq.read_table(reference / "interaction")
                                                               .column("id").to_pylist())


def test_shards_and_merge(llm, tmp_path):
    out = tmp_path / "fw"
    for k in (0, 1):
        assert vthinker(run_args(llm, out, "--num", "6", "--num-shards", "2", "--shard-index", str(k))) == 0
    shard0 = task_records(out / "shard-000-of-002")
    assert {r["task"]["index"] for r in shard0.values()} == {0, 2, 4}  # variants stay with their base
    single = tmp_path / "single"
    assert vthinker(run_args(llm, single, "--num", "6")) == 0

    assert vthinker(["flywheel", "merge", str(out)]) == 0
    assert statuses(out) == statuses(single)
    merged_rows = pq.read_table(out / "interaction").to_pylist()
    single_rows = pq.read_table(single / "interaction").to_pylist()
    assert [r["id"] for r in merged_rows] == [r["id"] for r in single_rows]
    assert all(a == b for a, b in zip(merged_rows, single_rows, strict=True))  # same bytes, same order
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["accepted"] == json.loads((single / "summary.json").read_text())["accepted"]
    assert (out / "report.html").exists()

    # Merging refuses a missing shard and shards of another run.
    with pytest.raises(SystemExit, match=r"shard\(s\) \[1\] of 2 are missing"):
        vthinker(["flywheel", "merge", str(tmp_path / "m1"), str(out / "shard-000-of-002")])
    other = tmp_path / "other"
    assert vthinker(run_args(llm, other, "--num", "6", "--num-shards", "2", "--shard-index", "1", "--seed", "5")) == 0
    with pytest.raises(SystemExit, match="another run"):
        vthinker(["flywheel", "merge", str(tmp_path / "m2"), str(out / "shard-000-of-002"),
                  str(other / "shard-001-of-002")])
    # A run folder planned otherwise is not resumed into.
    with pytest.raises(SystemExit, match=r"planned otherwise.*seed"):
        vthinker(run_args(llm, single, "--num", "6", "--seed", "1"))


# --------------------------------------------------------------------------- the offline default

def test_default_command_runs_offline_on_the_builtin_scripted_server(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert vthinker(["flywheel", "run", "--num", "3", "--no-progress"]) == 0
    out = tmp_path / "runs" / "flywheel"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["identity"]["generator_model"] == "scripted" and summary["accepted"] >= 3
    assert "Scripted run" in (out / "report.html").read_text()
    assert "SCRIPTED server" in capsys.readouterr().err
    graph = out / "knowledge.jsonl"
    assert vthinker(["flywheel", "evolve", "--graph", str(graph), "--sources", "4", "--no-progress"]) == 0
    capsys.readouterr()
    assert vthinker(["flywheel", "graph", "--graph", str(graph), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["version"] == 1 and stats["by_layer"].get("4 subconcept", 0) >= 1
    # The graph grew: the earlier run's folder was planned on the old graph and is not resumed into.
    with pytest.raises(SystemExit, match="graph_digest"):
        vthinker(["flywheel", "run", "--num", "3", "--no-progress"])
    # A mistyped endpoint ends the command at once instead of turning every task into an error.
    with pytest.raises(SystemExit, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        vthinker(["flywheel", "run", "--out", str(tmp_path / "x"), "--base-url", "http://127.0.0.1:9/v1",
                  "--model", "m"])
