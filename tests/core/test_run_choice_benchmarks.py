"""``vthinker run --benchmark wemath|visulogic`` as users run it (subprocesses, the tiny model): a run killed
midway resumes without duplicates, and the summary carries the official reports."""

from __future__ import annotations

import json
import subprocess

from run_helpers import kill_after_first_row, read_rows

from vthinker_plugins.data.visulogic_sample import make_visulogic_sample
from vthinker_plugins.data.wemath_sample import make_wemath_sample

DRAW_THEN_ANSWER = [
    "<think>I mark the figure.\n<code>\n```python\nfrom PIL import Image, ImageDraw\n"
    "img = Image.open(image_path).convert('RGB')\nImageDraw.Draw(img).line((5, 5, 60, 40), fill='red', width=3)\n"
    "img.save(processed_path)\nprint(processed_path)\n```\n</code>",
    "\nThe mark shows it.</think><answer>{answer}</answer>",
]




def test_wemath_killed_midway_resumes_and_reports_four_dimensions(tmp_path, vthinker_cmd, cli_env,
                                                                 tiny_model_dir) -> None:
    data = make_wemath_sample(tmp_path / "wemath.parquet", two_step=1, three_step=1)
    out = tmp_path / "wm"
    cmd = [*vthinker_cmd, "run", "--benchmark", "wemath", "--data", str(data), "--model", str(tiny_model_dir),
           "--output", str(out), "--eval", "--max-new-tokens", "24", "--model-option", "max_batch_size=1",
           "--concurrency", "1", "--no-report"]
    results = out / "results.jsonl"
    first = kill_after_first_row(cmd, cli_env, tmp_path, results)
    assert 1 <= len(first) < 7, f"kill landed after {len(first)} rows"

    done = subprocess.run(cmd, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{len(first)} already done" in done.stdout
    rows = read_rows(results)
    assert [r["id"] for r in rows][: len(first)] == [r["id"] for r in first]
    assert sorted(r["id"] for r in rows) == sorted(["2steps_1-1", "2steps_1-2", "2steps_1-multi", "3steps_1-1",
                                                    "3steps_1-2", "3steps_1-3", "3steps_1-multi"])
    assert all(r["task"] == "wemath" and r["verdict"]["group"] and r["verdict"]["step"] for r in rows)
    metrics = json.loads((out / "summary.json").read_text())["metrics"]["wemath"]
    assert metrics["n"] == 7 and metrics["four_dimensions"]["groups"] == 2
    assert metrics["four_dimensions"]["incomplete_groups"] == 0
    assert set(metrics["official"]) >= {"Score (Strict)", "Score (Loose)", "One-step(S1)", "Three-step(S3)"}


def test_visulogic_scripted_run_reports_per_category(tmp_path, vthinker_cmd, cli_env, tiny_model_dir) -> None:
    data = make_visulogic_sample(tmp_path / "vl", n=3)
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps({"id": "*", "rounds": DRAW_THEN_ANSWER}) + "\n")
    out = tmp_path / "run"
    cmd = [*vthinker_cmd, "run", "--benchmark", "visulogic", "--data", str(data),
           "--model", f"scripted:{tiny_model_dir}", "--model-option", f"script={script}",
           "--output", str(out), "--eval"]
    done = subprocess.run(cmd, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = read_rows(out / "results.jsonl")
    assert len(rows) == 3 and all(r["correct"] is True and r["n_tool_calls"] == 1 for r in rows)
    metrics = json.loads((out / "summary.json").read_text())["metrics"]["visulogic"]
    assert metrics["accuracy"] == 1.0
    assert list(metrics["official"]) == ["Overall", "Quantitative Reasoning", "Spatial Reasoning",
                                         "Positional Reasoning"]
    assert metrics["official"]["Overall"] == {"tot": 3, "hit": 3, "acc": 100.0}
    assert (out / "report.html").stat().st_size > 0
