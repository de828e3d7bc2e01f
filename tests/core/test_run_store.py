"""The one run store: older run folders (both earlier trajectory layouts) still resume, and the file
primitives repair what a kill leaves."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from vthinker_plugins.runs.files import read_jsonl, safe_name, slug
from vthinker_plugins.runs.trajectory import LAYOUT, load_record, shown_images


def _run(cmd, env, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _to_old_run_layout(out: Path, row: dict) -> dict:
    """Rewrite one row and its images the way ``vthinker run`` wrote them before layout 2: a hash-less
    ``images/<id>/`` folder, ``input_{i}.png``, ``round{k}_{j}.png`` (j from 0) for the shown images only."""
    new_folder = out / Path(row["input_images"][0]).parent
    old_folder = out / "images" / slug(row["id"])
    old_folder.mkdir(parents=True)
    old = {k: v for k, v in row.items() if k not in ("layout", "generated_images")}
    old["input_images"] = []
    for i, path in enumerate(row["input_images"]):
        shutil.copy(out / path, old_folder / f"input_{i}.png")
        old["input_images"].append(f"images/{old_folder.name}/input_{i}.png")
    old["rounds"] = []
    for k, rnd in enumerate(row["rounds"], 1):
        shown = []
        for j, path in enumerate(rnd["images"][: rnd["images_shown"]]):
            shutil.copy(out / path, old_folder / f"round{k}_{j}.png")
            shown.append(f"images/{old_folder.name}/round{k}_{j}.png")
        old["rounds"].append(dict(rnd, images=shown))
    if row.get("annotation_image"):
        shutil.copy(out / row["annotation_image"], old_folder / "annotation.png")
        old["annotation_image"] = f"images/{old_folder.name}/annotation.png"
    shutil.rmtree(new_folder)
    return old


def test_a_run_folder_of_the_old_layout_resumes_and_is_scored_from_its_images(
        tmp_path, vthinker_cmd, cli_env, vtbench_file) -> None:
    """A folder written before the one trajectory layout: rows with only the shown images, in hash-less
    folders. ``--eval`` added on the re-run scores every stored row from those images (the pixel metric
    needs the drawing) with nothing generated again; new rows use the current layout."""
    out = tmp_path / "o"
    cmd = [*vthinker_cmd, "run", "--benchmark", "vtbench-perception", "--data", str(vtbench_file), "--model",
           "reference", "--output", str(out), "--no-report"]
    _run(cmd, cli_env, tmp_path)
    rows = _rows(out / "results.jsonl")
    assert len(rows) == 3 and all(r["layout"] == LAYOUT and r["verdict"] is None for r in rows)
    assert all(len(r["rounds"][0]["images"]) >= r["rounds"][0]["images_shown"] == 1 for r in rows)
    old_rows = [_to_old_run_layout(out, r) for r in rows[:2]]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*old_rows, dict(rows[2], error="x")]))

    proc = _run([*cmd, "--eval"], cli_env, tmp_path)
    assert "2 row(s) re-scored with judge-free scoring, 0 re-judged, 1 regenerated" in proc.stdout
    again = {r["id"]: r for r in _rows(out / "results.jsonl")}
    for old in old_rows:
        row = again[old["id"]]
        assert row["rounds"][0]["images"] == old["rounds"][0]["images"]  # still read where it was written
        assert row["correct"] is True and row["verdict"]["pixel"]["passed"] is True and not row["verdict"]["no_image"]
    fresh = again[rows[2]["id"]]
    assert fresh["layout"] == LAYOUT and fresh["correct"] is True
    assert Path(fresh["rounds"][0]["images"][0]).name == "round1_image1.png"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"] == {"generated": 1, "rescored": 2, "rejudged": 0, "regenerated": 1}


def test_a_harness_record_of_the_old_layout_is_read_as_the_current_one(tmp_path) -> None:
    """Harness records before layout 2 listed all images only in ``generated_images`` (``round{r}_image{i}.png``);
    read back, each round lists its own images and the shown ones are the first ``images_shown``."""
    folder = tmp_path / safe_name("vtbench:3")
    folder.mkdir()
    paths = []
    for name in ("round1_image1.png", "round1_image2.png", "round2_image1.png"):
        Image.new("RGB", (8, 8), "red").save(folder / name)
        paths.append(str(folder / name))
    old = {"id": "3", "text": "t", "rounds": [{"text": "a", "images_shown": 1}, {"text": "b", "images_shown": 1},
                                             {"text": "c", "images_shown": 0}],
           "generated_images": paths, "record": str(folder / "trajectory.json"), "key": "vtbench:3"}
    (folder / "trajectory.json").write_text(json.dumps(old))
    record = load_record(folder)
    assert record["layout"] == LAYOUT and record["generated_images"] == paths
    assert [r["images"] for r in record["rounds"]] == [paths[:2], paths[2:], []]
    assert shown_images(record, "/") == [Path(paths[0]), Path(paths[2])]
    (folder / "round2_image1.png").unlink()
    assert shown_images(record, "/") is None  # a missing image: the row is generated again, not mis-scored


def test_jsonl_reading_drops_only_a_torn_last_line(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 1, "v": 2}\n{"id": 3, "v"')
    found = read_jsonl(path, lambda r: None)
    assert found.torn and found.needs_repair and list(found.latest()) == ["2", "1"]
    assert found.latest()["1"] == {"id": 1, "v": 2}
    path.write_text('{"id": 1}\ngarbage\n{"id": 2}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2: not a JSON row"):
        read_jsonl(path, lambda r: None)
    path.write_text('{"x": 1}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:1: no id"):
        read_jsonl(path, lambda r: None if "id" in r else "no id")
