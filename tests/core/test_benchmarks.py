"""Benchmark loaders on real MathVision data and on generated VTBench-format data in every local layout."""

from __future__ import annotations

import json

import datasets
import pytest
from PIL import Image

from vthinker_plugins.data.benchmarks import BENCHMARKS, load_benchmark
from vthinker_plugins.data.sources import DataError

VTBENCH_COLUMNS = ["id", "image", "annotation_instruction", "annotation_perception", "question_reasoning",
                   "answer_reasoning", "question_perception", "question_instruction", "answer_instruction"]


def test_mathvision_shared_layout_loads_as_is(mathvision_dir) -> None:
    samples = load_benchmark("mathvision-testmini", data=str(mathvision_dir), limit=8)
    assert [s.id for s in samples] == ["4", "5", "6", "7", "8", "10", "11", "16"]
    free, choice = samples[0], samples[2]
    assert free.task == "mathvision" and free.answer == "6" and free.options == []
    assert free.meta["level"] == 1 and free.meta["subject"] == "counting"
    assert isinstance(free.images[0], Image.Image) and free.images[0].size[0] > 0
    assert choice.options == ["A", "B", "C", "D", "E"] and choice.answer == "D"
    assert "A, B, C, D, E" in choice.question
    full = load_benchmark("mathvision", data=str(mathvision_dir), limit=3)
    assert len(full) == 3


def test_mathvision_options_with_text_are_listed(tmp_path, mathvision_dir) -> None:
    row = {"id": "x1", "question": "Which?\n<image1>", "options": ["3", "4", "5"], "answer": "B", "solution": None,
           "level": 2, "subject": "geometry", "image": str(mathvision_dir / "images" / "4.jpg")}
    (tmp_path / "testmini.jsonl").write_text(json.dumps(row) + "\n")
    (sample,) = load_benchmark("mathvision-testmini", data=str(tmp_path))
    assert "(A) 3\n(B) 4\n(C) 5" in sample.question and sample.options == ["3", "4", "5"]


def test_vtbench_from_parquet_folder_and_save_to_disk(vtbench_file, tmp_path) -> None:
    by_file = load_benchmark("vtbench", data=str(vtbench_file))
    assert len(by_file) == 9 and [s.task for s in by_file[:3]] == [
        "vtbench_perception", "vtbench_instruction", "vtbench_reasoning"]
    perception, instruction, reasoning = by_file[:3]
    assert perception.max_rounds == 1 and instruction.max_rounds == 1 and reasoning.max_rounds == 5
    assert isinstance(perception.meta["annotation"], Image.Image) and perception.answer is None
    assert instruction.answer and reasoning.answer and len(reasoning.meta["reference_code"]) == 2
    by_folder = load_benchmark("vtbench-reasoning", data=str(vtbench_file.parent))
    assert [s.id for s in by_folder] == [s.id for s in by_file if s.task == "vtbench_reasoning"]
    disk = tmp_path / "disk"
    datasets.Dataset.from_parquet(str(vtbench_file)).save_to_disk(str(disk))
    by_disk = load_benchmark("vtbench-perception", data=str(disk), limit=2)
    assert [s.id for s in by_disk] == [s.id for s in by_file if s.task == "vtbench_perception"][:2]
    by_path = load_benchmark(str(vtbench_file), limit=2)  # format detected from the columns
    # --limit is per task (as in lmms-eval): the first two rows' items of each of the three tasks.
    assert [s.id for s in by_path] == [s.id for s in by_file[:6]]
    assert len(load_benchmark("vtbench", data=str(vtbench_file), limit=5)) == 9  # only 3 rows: all of them


def test_hub_schema_without_extra_columns(vtbench_file, tmp_path) -> None:
    ds = datasets.Dataset.from_parquet(str(vtbench_file)).select_columns(VTBENCH_COLUMNS)
    ds.to_parquet(str(tmp_path / "train-00000-of-00001.parquet"))
    samples = load_benchmark("vtbench", data=str(tmp_path))
    assert len(samples) == 9 and "reference_code" not in samples[0].meta


def test_bad_input_names_row_and_field(vtbench_file, tmp_path, mathvision_dir) -> None:
    ds = datasets.Dataset.from_parquet(str(vtbench_file)).remove_columns(["question_instruction"])
    ds.to_parquet(str(tmp_path / "broken.parquet"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['question_instruction'\] for benchmark 'vtbench'"):
        load_benchmark("vtbench", data=str(tmp_path / "broken.parquet"))
    row = {"id": "9", "question": "Q?", "options": [], "answer": "1", "solution": None, "level": 1,
           "subject": "s", "image": "images/does-not-exist.jpg"}
    (tmp_path / "mv").mkdir()
    (tmp_path / "mv" / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"mv/test.jsonl row 0 \(line 1\) \(id=9\) field 'image': image file "
                                        r".*does-not-exist.jpg"):
        load_benchmark("mathvision", data=str(tmp_path / "mv"))
    # A line that is not JSON: the file and line, not a reader traceback.
    (tmp_path / "mv" / "test.jsonl").write_text(json.dumps(row) + "\n\n" + json.dumps(row)[:-9] + "\n")
    with pytest.raises(DataError, match=r"mv/test.jsonl line 3: not valid JSON \(.*column"):
        load_benchmark("mathvision", data=str(tmp_path / "mv"))
    (tmp_path / "mv" / "test.jsonl").write_text(json.dumps({**row, "answer": " ", "image": "x"}) + "\n")
    with pytest.raises(DataError, match="field 'answer' is empty"):
        load_benchmark("mathvision", data=str(tmp_path / "mv"))
    with pytest.raises(DataError, match="unknown benchmark 'mathvison'"):
        load_benchmark("mathvison")
    with pytest.raises(DataError, match=r"missing column\(s\) \['answer', 'question'\]"):
        load_benchmark("mathvision", data=str(vtbench_file))
    with pytest.raises(DataError, match="cannot tell the benchmark format"):
        load_benchmark(str(tmp_path / "broken.parquet"))
    assert set(BENCHMARKS) == {"vtbench", "vtbench-perception", "vtbench-instruction", "vtbench-reasoning",
                               "mathvision", "mathvision-testmini", "wemath", "visulogic"}


def test_generic_rows_from_a_path(tmp_path, mathvision_dir) -> None:
    rows = [{"id": "g1", "question": "Count the dots.", "image": str(mathvision_dir / "images" / "4.jpg"),
             "answer": "3"},
            {"id": "g2", "question": "Which is larger?", "image": str(mathvision_dir / "images" / "5.jpg"),
             "answer": "B", "options": ["left", "right"], "task": "generic"}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_benchmark(str(path))
    assert [(s.id, s.task, s.answer) for s in samples] == [("g1", "generic", "3"), ("g2", "generic", "B")]
    assert samples[1].options == ["left", "right"] and samples[0].images[0].size[0] > 0
    with pytest.raises(DataError, match="--data is only for named benchmarks"):
        load_benchmark(str(path), data=str(path))
