"""Fixtures of the core tests: a generated VTBench-format sample, a scripted tiny-model backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def vtbench_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's generated VTBench-format sample: 3 rows (one per figure template), 9 items."""
    from vthinker_plugins.data.vtbench_sample import make_vtbench_sample

    return make_vtbench_sample(tmp_path_factory.mktemp("vtbench") / "vtbench_sample.parquet", n=3, seed=0)


@pytest.fixture(scope="session")
def hf_backend(tiny_model_dir: Path):
    """The transformers backend on the tiny Qwen2.5-VL, generating freely."""
    from vthinker_plugins.backends import make_backend

    return make_backend(str(tiny_model_dir), device="cpu", max_batch_size=4)


@pytest.fixture(scope="session")
def scripted_backend(tiny_model_dir: Path):
    """The ``scripted:`` backend on the tiny Qwen2.5-VL (tests set ``.script`` as they need)."""
    from vthinker_plugins.backends import make_backend

    return make_backend(f"scripted:{tiny_model_dir}", script={}, device="cpu", max_batch_size=4)


@pytest.fixture
def scripted(scripted_backend):
    """Set a script on the shared scripted backend for one test, then clear it."""
    from vthinker_plugins.testing.scripted import Script

    def use(rounds_by_id):
        scripted_backend.script = Script.load(rounds_by_id)
        return scripted_backend

    yield use
    scripted_backend.script = None


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for ``python -m vthinker_plugins.cli`` subprocesses (repo importable, offline, 1 thread)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    return env


@pytest.fixture(scope="session")
def vthinker_cmd() -> list[str]:
    return [sys.executable, "-m", "vthinker_plugins.cli"]
