"""Fixtures of the GRPO tests: a small RL dataset in the hub's shape, a shared sandbox, scripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpo_helpers import make_image


@pytest.fixture(scope="session")
def rl_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four V-Interaction-shaped rows (question, image, answer) as parquet with embedded images."""
    import datasets

    rows = {
        "id": [f"q{i}" for i in range(4)],
        "question": [f"How many sides does shape {i} have?" for i in range(4)],
        "image": [make_image(i) for i in range(4)],
        "answer": ["3", "3", "4", "3"],
    }
    features = datasets.Features(
        {"id": datasets.Value("string"), "question": datasets.Value("string"), "image": datasets.Image(),
         "answer": datasets.Value("string")}
    )
    path = tmp_path_factory.mktemp("rl") / "train.parquet"
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def sandbox():
    from sandbox import Sandbox, SandboxConfig

    box = Sandbox(SandboxConfig(wall_time_s=2.0, workers=2))
    yield box
    close = getattr(box, "close", None)
    if close is not None:
        close()
