"""The V-Perception-style synthesizer: exact answers, determinism, parallelism, stage-1 convertibility."""

from __future__ import annotations

import io
import json
import random

import datasets
import numpy as np
import pytest
from PIL import Image

from vthinker_plugins.cli import main as vthinker
from vthinker_plugins.data import figures
from vthinker_plugins.data.perception import parse_points
from vthinker_plugins.data.sources import DataError
from vthinker_plugins.data.synth_perception import make_sample, synthesize


def pixels(fig: figures.Figure) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(figures.render(fig.code()))).convert("RGB"), dtype=np.int16)


def ink_at(img: np.ndarray, xy: tuple[int, int], radius: int = 1) -> bool:
    x, y = xy
    patch = img[y - radius:y + radius + 1, x - radius:x + radius + 1]
    return bool((patch.sum(axis=2) < 600).any())


@pytest.mark.parametrize("seed", range(6))
def test_answers_are_where_the_drawing_puts_them(seed: int) -> None:
    for level, gens in figures.GENERATORS.items():
        for gen in gens:
            fig = gen(random.Random(seed))
            assert fig.level == level and fig.width % 28 == 0 and fig.height % 28 == 0
            img = pixels(fig)
            for name, (x, y) in fig.answer.items():
                assert 0 <= x < fig.width and 0 <= y < fig.height, (gen.__name__, name)
                if gen is figures.circle_center:
                    black = np.argwhere((img == 0).all(axis=2))  # the outline only (dots are red)
                    cy, cx = (black.min(axis=0) + black.max(axis=0)) / 2
                    assert abs(cx - x) <= 2 and abs(cy - y) <= 2
                elif gen is figures.text_surface:
                    assert ink_at(img, (x, y), radius=8)  # the centre of a word sits on its glyphs
                elif gen is figures.tallest_bar:
                    assert ink_at(img, (x, y + 3), radius=0)  # just below the top edge: the bar
                    assert not ink_at(img, (x, y - 3), radius=0)  # just above: background
                else:
                    assert ink_at(img, (x, y)), (gen.__name__, name, (x, y))


def test_samples_are_deterministic_and_in_v_perception_format() -> None:
    a, b = make_sample(7, 11), make_sample(7, 11)
    assert a == b and make_sample(8, 11) != a
    points = parse_points(a["answer"])
    assert points and a["answer"].startswith("{'")
    assert set(a) == {"id", "image", "question", "answer", "python_code", "element_arrtibute"}
    # python_code re-creates the stored image exactly.
    assert figures.render(a["python_code"]) == a["image"]["bytes"]


def test_parallel_equals_serial_resume_and_convert(tmp_path) -> None:
    serial = synthesize(tmp_path / "s", num=18, seed=3, num_proc=1, shard_size=6, progress=False)
    parallel = synthesize(tmp_path / "p", num=18, seed=3, num_proc=2, shard_size=6, progress=False)
    rows_s = datasets.load_dataset("parquet", data_dir=str(serial), split="train")
    rows_p = datasets.load_dataset("parquet", data_dir=str(parallel), split="train")
    assert rows_s.num_rows == 18 and rows_s["id"] == rows_p["id"] and rows_s["answer"] == rows_p["answer"]
    levels = {i.split("-")[1] for i in rows_s["id"]}
    assert levels == set(figures.LEVELS)
    stamp = (serial / "part-00000.parquet").stat().st_mtime_ns
    synthesize(tmp_path / "s", num=18, seed=3, shard_size=6, progress=False)  # resume: nothing to redo
    assert (serial / "part-00000.parquet").stat().st_mtime_ns == stamp
    with pytest.raises(DataError):
        synthesize(tmp_path / "s", num=18, seed=4, shard_size=6, progress=False)

    out = tmp_path / "lf"
    assert vthinker(["convert", "perception", "--source", str(serial), "--out", str(out), "--name",
                     "synth_perception", "--no-progress"]) == 0
    summary = json.loads((out / "reports/synth_perception/summary.json").read_text())
    assert summary["written"] == 18 and summary["excluded"] == 0


def test_cli(tmp_path, capsys) -> None:
    assert vthinker(["synth-perception", "--num", "3", "--out", str(tmp_path), "--seed", "1", "--levels",
                     "integrated", "--no-progress"]) == 0
    assert "vthinker convert perception" in capsys.readouterr().out
    rows = datasets.load_dataset("parquet", data_dir=str(tmp_path / "data"), split="train")
    assert all(i.startswith("synth-integrated-") for i in rows["id"])
