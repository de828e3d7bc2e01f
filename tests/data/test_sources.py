"""Local data folders: a split is read from the files named after it, never from another split's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vthinker_plugins.data.benchmarks import load_benchmark
from vthinker_plugins.data.sources import DataError


def test_a_missing_split_is_an_error_not_another_split(tmp_path: Path, mathvision_dir: Path) -> None:
    """A MATH-V folder holding only testmini.jsonl is not MathVision test (3,040 rows): asking for the
    test split must fail instead of running testmini under the test name."""
    folder = tmp_path / "mathvision"
    folder.mkdir()
    shutil.copy(mathvision_dir / "testmini.jsonl", folder / "testmini.jsonl")
    (folder / "images").symlink_to(mathvision_dir / "images")
    assert len(load_benchmark("mathvision-testmini", data=str(folder), limit=2)) == 2
    with pytest.raises(DataError, match=r"no file for split 'test'.*testmini\.jsonl"):
        load_benchmark("mathvision", data=str(folder), limit=2)


def test_files_not_named_after_any_split_serve_the_default_split(tmp_path: Path, mathvision_dir: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(mathvision_dir / "testmini.jsonl", folder / "my_questions.jsonl")
    (folder / "images").symlink_to(mathvision_dir / "images")
    samples = load_benchmark("mathvision", data=str(folder), limit=3)
    assert [s.id for s in samples] == ["4", "5", "6"]


def test_converting_a_split_the_folder_lacks_fails(tmp_path: Path, interaction_parquet) -> None:
    """``--split train_part1,train_part2`` on a folder holding only part 1: part 2 is not part 1 again
    (the rows would be converted twice into the training data)."""
    from vthinker_plugins.cli import main as vthinker

    path, _ = interaction_parquet
    with pytest.raises(DataError, match=r"no file for split 'train_part2'"):
        vthinker(["convert", "interaction", "--source", str(path.parent), "--split", "train_part1,train_part2",
                  "--out", str(tmp_path / "out"), "--no-progress"])
