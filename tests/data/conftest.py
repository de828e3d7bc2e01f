"""Fixtures of the data tests: small hub-schema parquet files (see hub_schema.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_schema import interaction_rows, write_interaction_parquet, write_perception_parquet


@pytest.fixture(scope="session")
def interaction_parquet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A V-Interaction split file (good rows in three fence styles + malformed rows) and id -> reason."""
    rows, bad = interaction_rows()
    path = write_interaction_parquet(tmp_path_factory.mktemp("v_interaction") / "train_part1-00000.parquet", rows)
    return path, bad


@pytest.fixture(scope="session")
def perception_parquet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A V-Perception file (good rows + malformed rows) and id -> reason."""
    return write_perception_parquet(tmp_path_factory.mktemp("v_perception") / "v_perception_40k.parquet")
