"""Converters on hub-schema parquet: samples, exclusions with reasons, resume, parallel, local layouts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hub_schema import interaction_row, interaction_rows, perception_row, png

from vthinker_plugins.cli import main as vthinker
from vthinker_plugins.data import interaction, perception
from vthinker_plugins.data.sources import DataError
from vthinker_plugins.loop import Round, Trajectory
from vthinker_plugins.protocol import (
    DEFAULT_PROMPTS,
    IMAGE_PLACEHOLDER,
    check_format,
    pending_code,
    render_observation,
)
from vthinker_plugins.sample import Sample

ROOT = Path(__file__).resolve().parents[2]
VERIFY_ONLY = {"tool_code_failed", "edited_image_mismatch"}


def read_jsonl(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def run_convert(*args: str) -> int:
    return vthinker(["convert", *args, "--no-progress"])


@pytest.fixture(scope="module")
def converted(interaction_parquet, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path, bad = interaction_parquet
    out = tmp_path_factory.mktemp("converted")
    assert run_convert("interaction", "--source", str(path.parent), "--out", str(out), "--shard-size", "3") == 0
    return out, bad


def test_interaction_samples_and_exclusions(converted) -> None:
    out, bad = converted
    summary = json.loads((out / "reports/v_interaction/summary.json").read_text())
    structural = {k: v for k, v in bad.items() if v not in VERIFY_ONLY}
    assert summary["rows"] == 10
    assert summary["excluded"] == len(structural)
    assert summary["written"] == 10 - len(structural)
    excluded = [json.loads(line) for line in (out / "reports/v_interaction/excluded.jsonl").read_text().splitlines()]
    assert {e["id"]: e["reason"] for e in excluded} == structural
    assert all(e["detail"] and e["shard"].startswith("train-") for e in excluded)
    assert sum(summary["excluded_by_reason"].values()) == summary["excluded"]

    samples = read_jsonl(out / "v_interaction")
    assert [s["id"] for s in samples] == ["vi-0", "vi-1", "vi-2", "vi-3", "vi-14", "vi-15"]
    for sample in samples:
        roles = [m["role"] for m in sample["messages"]]
        assert roles == ["system", "user", "assistant", "observation", "assistant"]
        assert sample["messages"][0]["content"] == DEFAULT_PROMPTS.system
        n_placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in sample["messages"])
        assert n_placeholders == len(sample["images"]) == 2
        for rel in sample["images"]:
            assert (out / rel).is_file()
        assistant = "".join(m["content"] for m in sample["messages"][2:])
        assert check_format(assistant).ok
        assert sample["answer"] in assistant


def test_dataset_info_matches_repository_entry(converted) -> None:
    out, _ = converted
    written = json.loads((out / "dataset_info.json").read_text())
    shipped = json.loads((ROOT / "llamafactory_configs/dataset_info.json").read_text())
    assert written["v_interaction"] == shipped["v_interaction"]


def test_fence_variants_normalise_to_the_same_code_block() -> None:
    texts = set()
    for style in ("backtick", "quote", "bare"):
        row = interaction_row(7, style)
        segments = interaction.assistant_segments(row["CoT_with_code"], row["answer"], 1)
        texts.add(segments[0])
        block = pending_code(segments[0])
        assert block is not None and block.style == "backtick"
        assert block.code == row["tool_code"].strip("\n")
    assert len(texts) == 1


def test_text_is_byte_identical_to_the_interaction_loop() -> None:
    """The stage-2 assistant text equals Trajectory.text for the same rounds and observations."""
    row = interaction_row(3)
    converted = interaction.convert_row(row)
    segments = [m["content"] for m in converted.messages[2:]]
    # What the loop would record: generation stops at </code>, the sandbox returns one image.
    result = SimpleNamespace(status="ok", images=[object()], stdout="", stderr="", error=None)
    observation, shown = render_observation(result, images_left=10)
    assert shown == 1 and observation == segments[1]
    sample = Sample(id=row["id"], question=row["question"], images=[object()])  # type: ignore[list-item]
    trajectory = Trajectory(
        sample=sample,
        system=DEFAULT_PROMPTS.system,
        user=DEFAULT_PROMPTS.user_prompt(row["question"], 1),
        rounds=[
            Round(text=segments[0], finish_reason="stop", observation=observation),
            Round(text=segments[2], finish_reason="stop"),
        ],
    )
    assert trajectory.text == "".join(segments)
    assert trajectory.answer == row["answer"]
    assert converted.messages[1]["content"] == trajectory.user


def test_missing_answer_and_existing_observations() -> None:
    row = interaction_row(4)
    # Data that already carries a sandbox output and no <think>/<answer>: re-rendered canonically.
    row["CoT_with_code"] = (
        "I draw.\n<code>print(1)</code>\n<sandbox_output>/tmp/x.png</sandbox_output>\nSo it is 4."
    )
    text = "".join(m["content"] for m in interaction.convert_row(row).messages[2:])
    assert text.startswith("<think>I draw.") and text.endswith("So it is 4.</think><answer>4</answer>")
    assert text.count("<sandbox_output><image></sandbox_output>") == 1
    row["answer"] = ""
    with pytest.raises(interaction.RowExcluded) as err:
        interaction.convert_row(row)
    assert err.value.reason == "missing_answer"


def test_resume_reuses_finished_shards_and_limit_shrinks(interaction_parquet, tmp_path) -> None:
    path, _ = interaction_parquet
    out = tmp_path / "out"
    args = ("interaction", "--source", str(path), "--out", str(out), "--shard-size", "2")
    assert run_convert(*args, "--limit", "4") == 0
    first = out / "reports/v_interaction/train-00000.json"
    stamp = first.stat().st_mtime_ns
    assert run_convert(*args) == 0
    assert first.stat().st_mtime_ns == stamp  # not redone
    assert json.loads((out / "reports/v_interaction/summary.json").read_text())["rows"] == 10
    assert run_convert(*args, "--limit", "2") == 0  # a shorter run leaves only its own shards
    assert len(read_jsonl(out / "v_interaction")) == 2
    with pytest.raises(DataError, match="--overwrite"):
        run_convert(*args, "--shard-size", "5")
    assert run_convert(*args, "--shard-size", "5", "--overwrite") == 0


def test_parallel_output_equals_serial(interaction_parquet, converted, tmp_path) -> None:
    path, _ = interaction_parquet
    serial_out, _ = converted
    out = tmp_path / "par"
    assert run_convert("interaction", "--source", str(path.parent), "--out", str(out), "--shard-size", "3",
                       "--num-proc", "2") == 0
    assert read_jsonl(out / "v_interaction") == read_jsonl(serial_out / "v_interaction")


def test_local_jsonl_with_image_paths_and_save_to_disk(tmp_path) -> None:
    import datasets

    rows = [interaction_row(i) for i in range(3)]
    (tmp_path / "src/img").mkdir(parents=True)
    with open(tmp_path / "src/rows.jsonl", "w") as fh:
        for i, row in enumerate(rows):
            for col in ("image", "edited_image"):
                (tmp_path / f"src/img/{i}_{col}.png").write_bytes(row[col]["bytes"])
                row[col] = f"img/{i}_{col}.png"
            fh.write(json.dumps(row) + "\n")
    assert run_convert("interaction", "--source", str(tmp_path / "src/rows.jsonl"), "--out", str(tmp_path / "a")) == 0
    assert len(read_jsonl(tmp_path / "a/v_interaction")) == 3

    good = [interaction_row(i) for i in range(3)]
    datasets.Dataset.from_list(good).save_to_disk(str(tmp_path / "disk"))
    assert run_convert("interaction", "--source", str(tmp_path / "disk"), "--out", str(tmp_path / "b"),
                       "--format", "parquet") == 0
    table = datasets.load_dataset("parquet", data_dir=str(tmp_path / "b/v_interaction"), split="train")
    assert table.num_rows == 3 and table[0]["messages"][3]["role"] == "observation"


def test_missing_column_is_a_clear_error(tmp_path) -> None:
    import datasets

    row = interaction_row(0)
    del row["CoT_with_code"]
    datasets.Dataset.from_list([row]).to_parquet(str(tmp_path / "x.parquet"))
    with pytest.raises(DataError, match="CoT_with_code"):
        run_convert("interaction", "--source", str(tmp_path / "x.parquet"), "--out", str(tmp_path / "o"))


def test_perception(perception_parquet, tmp_path) -> None:
    path, bad = perception_parquet
    assert run_convert("perception", "--source", str(path), "--out", str(tmp_path)) == 0
    samples = read_jsonl(tmp_path / "v_perception")
    assert len(samples) == 4
    first = samples[0]
    assert first["messages"] == [
        {"role": "user", "content": "<image>Output the pixel coordinates of point P1."},
        {"role": "assistant", "content": "{'P1': (40, 30)}"},
    ]
    excluded = [json.loads(x) for x in (tmp_path / "reports/v_perception/excluded.jsonl").read_text().splitlines()]
    assert {e["id"]: e["reason"] for e in excluded} == bad
    assert perception.parse_points("{'P4': (280, 80), 'A': (1.5, 2)}") == {"P4": (280.0, 80.0), "A": (1.5, 2.0)}
    assert perception.parse_points("the answer is 3") is None
    assert perception.format_points({"P4": (280, 80)}) == "{'P4': (280, 80)}"
    row = perception_row(1)
    row["image"] = {"bytes": png.__call__(__import__("PIL.Image").Image.new("RGB", (10, 10)))[:30], "path": None}
    with pytest.raises(interaction.RowExcluded) as err:
        perception.convert_row(row)
    assert err.value.reason == "undecodable_image"


def test_verification_in_the_sandbox(interaction_parquet, tmp_path) -> None:
    path, bad = interaction_parquet
    assert run_convert("interaction", "--source", str(path), "--out", str(tmp_path), "--verify",
                       "--verify-timeout", "60") == 0
    excluded = [json.loads(x) for x in (tmp_path / "reports/v_interaction/excluded.jsonl").read_text().splitlines()]
    assert {e["id"]: e["reason"] for e in excluded} == bad, excluded
    assert len(read_jsonl(tmp_path / "v_interaction")) == 4


def test_rows_helper_covers_every_reason() -> None:
    _, bad = interaction_rows()
    assert set(bad.values()) >= {"placeholder_count_mismatch", "missing_edited_image", "undecodable_image"}


class _FailsOnce:
    """The perception converter behind a failure of the machinery on the first call (e.g. the sandbox
    of --verify falling over): every row of that shard is excluded as converter_error."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.inner = perception.PerceptionConverter()

    def __call__(self, rows: list[dict]) -> list:
        if not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("sandbox pool died")
        return self.inner(rows)


def test_shards_lost_to_a_converter_error_are_retried_on_resume(tmp_path: Path) -> None:
    from vthinker_plugins.data.sharegpt import convert

    rows = [perception_row(i) for i in range(4)]
    converter = _FailsOnce(tmp_path / "failed_once")
    first = convert([("train", rows)], converter, tmp_path / "out", "p", shard_size=2, progress=False)
    assert first["written"] == 2 and first["excluded_by_reason"] == {"converter_error": 2}
    # The same command again: the shard that fell over is converted, the finished one is kept.
    again = convert([("train", rows)], converter, tmp_path / "out", "p", shard_size=2, progress=False)
    assert again["written"] == 4 and again["excluded"] == 0 and again["shards"] == 2
    assert [s["id"] for s in read_jsonl(tmp_path / "out" / "p")] == ["vp-0", "vp-1", "vp-2", "vp-3"]
