"""Stage-2 samples longer than cutoff_len: LlamaFactory 0.9.5 truncates them through their image tokens
and training crashes; ``vthinker convert interaction --cutoff-len N --tokenizer CKPT`` excludes them
first (reason ``too_long``), counting the tokens exactly as LlamaFactory does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from hub_schema import interaction_row, png, write_interaction_parquet

from vthinker_plugins.cli import main as vthinker
from vthinker_plugins.llamafactory import TEMPLATE_NAME

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SMOKE = ROOT / "llamafactory_configs" / "smoke"
IMAGE_MAX_PIXELS = 50176  # the smoke YAML's image_max_pixels


def _rows() -> list[dict]:
    """Two short rows, one long by its text, one long by its images (larger than image_max_pixels:
    LlamaFactory resizes them before the image processor does)."""
    rows = [interaction_row(i) for i in range(4)]
    rows[1]["question"] += " Explain every step in detail." * 40
    big = Image.new("RGB", (420, 300), (255, 255, 255))
    ImageDraw.Draw(big).rectangle([8, 8, 200, 150], outline=(0, 0, 0), width=2)
    rows[2]["image"] = {"bytes": png(big), "path": None}
    rows[2]["edited_image"] = {"bytes": png(big.rotate(90, expand=True)), "path": None}
    return rows


def _samples(out: Path) -> list[dict]:
    files = sorted((out / "v_interaction").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def _convert(src: Path, out: Path, *extra: str) -> dict:
    assert vthinker(["convert", "interaction", "--source", str(src), "--out", str(out), "--no-progress", *extra]) == 0
    return json.loads((out / "reports" / "v_interaction" / "summary.json").read_text())


def _train(sft_bin: Path, env: dict, model: Path, data: Path, out: Path, cutoff: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(sft_bin / "llamafactory-cli"), "train", str(SMOKE / "stage2_cpu.yaml"), f"model_name_or_path={model}",
         f"dataset_dir={data}", f"output_dir={out}", f"cutoff_len={cutoff}", "max_steps=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_too_long_samples_are_excluded_before_training(tmp_path, sft_bin, lf_env, tiny_model_dir) -> None:
    src = tmp_path / "interaction.parquet"
    write_interaction_parquet(src, _rows())

    # Counted lengths equal the lengths of LlamaFactory's own encoding (its data pipeline, our template).
    counted = _convert(src, tmp_path / "counted", "--cutoff-len", "100000", "--tokenizer", str(tiny_model_dir),
                       "--image-max-pixels", str(IMAGE_MAX_PIXELS))
    assert counted["excluded"] == 0 and counted["length_check"]["cutoff_len"] == 100000
    proc = subprocess.run(
        [str(sft_bin / "python"), str(HERE / "lf_encode.py"), str(tiny_model_dir), str(tmp_path / "counted"),
         "v_interaction", TEMPLATE_NAME],
        env=lf_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    encoded = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    lengths = {s["id"]: s["n_tokens"] for s in _samples(tmp_path / "counted")}
    assert sorted(lengths.values()) == sorted(len(e["input_ids"]) for e in encoded), (lengths, proc.stderr[-2000:])
    short = max(lengths["vi-0"], lengths["vi-3"])
    assert lengths["vi-1"] > short and lengths["vi-2"] > short + 100  # by its text / by its image tokens
    cutoff = short + 10

    # Without the check the long samples reach LlamaFactory, which cuts them through their image tokens.
    plain = _convert(src, tmp_path / "plain")
    assert plain["excluded"] == 0 and plain["length_check"] is None
    assert "--cutoff-len" in plain["note"] and "--tokenizer" in plain["note"]
    crashed = _train(sft_bin, lf_env, tiny_model_dir, tmp_path / "plain", tmp_path / "crash", cutoff)
    assert crashed.returncode != 0
    assert "Image features and image tokens do not match" in crashed.stdout + crashed.stderr

    # With it they are excluded, reported by id and reason, and training runs.
    checked = _convert(src, tmp_path / "checked", "--cutoff-len", str(cutoff), "--tokenizer", str(tiny_model_dir),
                       "--image-max-pixels", str(IMAGE_MAX_PIXELS))
    assert checked["excluded_by_reason"] == {"too_long": 2} and "note" not in checked
    excluded = [json.loads(line) for line in
                (tmp_path / "checked" / "reports" / "v_interaction" / "excluded.jsonl").read_text().splitlines()]
    assert sorted((e["id"], e["reason"]) for e in excluded) == [("vi-1", "too_long"), ("vi-2", "too_long")]
    assert all(f"> cutoff_len {cutoff}" in e["detail"] for e in excluded)
    assert sorted(s["id"] for s in _samples(tmp_path / "checked")) == ["vi-0", "vi-3"]
    trained = _train(sft_bin, lf_env, tiny_model_dir, tmp_path / "checked", tmp_path / "ok", cutoff)
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-6000:]
    state = json.loads((tmp_path / "ok" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_length_options_are_checked(tmp_path, tiny_model_dir) -> None:
    from vthinker_plugins.data.sources import DataError

    src = tmp_path / "interaction.parquet"
    write_interaction_parquet(src, [interaction_row(0)])
    base = ["convert", "interaction", "--source", str(src), "--out", str(tmp_path / "o"), "--no-progress"]
    with pytest.raises(DataError, match="go together"):
        vthinker([*base, "--cutoff-len", "100"])
    with pytest.raises(DataError, match="cannot load"):
        vthinker([*base, "--cutoff-len", "100", "--tokenizer", str(tmp_path / "no-such-checkpoint")])
    # Without the check the manifest is as before, so conversions made before the option existed resume.
    assert vthinker(base) == 0
    manifest = json.loads((tmp_path / "o" / "reports" / "v_interaction" / "manifest.json").read_text())
    assert not {"cutoff_len", "tokenizer", "image_max_pixels", "image_min_pixels"} & set(manifest)
