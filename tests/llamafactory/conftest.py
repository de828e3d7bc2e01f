"""Fixtures of the LlamaFactory tests: converted stage-1/stage-2 data (the environment in which plain
``llamafactory-cli`` knows the ``vthinker_qwen2_vl`` template, ``lf_env`` and ``run_lf``, is in tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from hub_schema import interaction_rows, write_interaction_parquet, write_perception_parquet

from vthinker_plugins.cli import main as vthinker


@pytest.fixture(scope="session")
def lf_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LlamaFactory dataset_dir holding converted v_perception and v_interaction data."""
    src = tmp_path_factory.mktemp("lf-src")
    out = tmp_path_factory.mktemp("lf-data")
    rows, _ = interaction_rows()
    write_interaction_parquet(src / "interaction.parquet", rows)
    write_perception_parquet(src / "perception.parquet")
    for kind, name in (("interaction", "interaction.parquet"), ("perception", "perception.parquet")):
        assert vthinker(["convert", kind, "--source", str(src / name), "--out", str(out), "--no-progress"]) == 0
    return out
