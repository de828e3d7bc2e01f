"""The generated VTBench-format sample: hub schema, determinism, the command."""

from __future__ import annotations

import subprocess

import pyarrow.parquet as pq

from vthinker_plugins.data.vtbench_sample import build_rows, make_vtbench_sample

HUB_COLUMNS = ["id", "image", "annotation_instruction", "annotation_perception", "question_reasoning",
               "answer_reasoning", "question_perception", "question_instruction", "answer_instruction"]


def test_schema_is_the_hub_schema_plus_code(vtbench_file) -> None:
    table = pq.read_table(vtbench_file)
    assert table.column_names[: len(HUB_COLUMNS)] == HUB_COLUMNS
    assert table.column_names[len(HUB_COLUMNS):] == ["code_perception", "code_instruction", "code_reasoning",
                                                     "figure_code"]
    image = table.column("image")[0].as_py()
    assert set(image) == {"bytes", "path"} and image["bytes"].startswith(b"\x89PNG")  # embedded, as on the hub
    assert table.num_rows == 3


def test_deterministic_and_seeded(tmp_path) -> None:
    a = make_vtbench_sample(tmp_path / "a.parquet", n=3, seed=1).read_bytes()
    b = make_vtbench_sample(tmp_path / "b", n=3, seed=1).read_bytes()
    assert a == b
    other = build_rows(3, seed=2)
    assert [r["question_reasoning"] for r in other] != [r["question_reasoning"] for r in build_rows(3, seed=1)]
    for row in other:  # the ground truth differs from the figure: something was drawn
        assert row["annotation_perception"].tobytes() != row["image"].tobytes()
        assert row["annotation_instruction"].tobytes() != row["image"].tobytes()


def test_command(tmp_path, vthinker_cmd, cli_env) -> None:
    out = tmp_path / "s"
    proc = subprocess.run([*vthinker_cmd, "make-vtbench-sample", str(out), "--n", "2"], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 rows (6 items)" in proc.stdout and pq.read_table(out / "vtbench_sample.parquet").num_rows == 2
