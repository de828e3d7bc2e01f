"""Fixtures shared by every test area: the tiny model, the real MathVision data, the environments."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CI puts a copy of shared/ beside the clone; a developer's checkout has it at ../shared as well.
SHARED = Path(os.environ.get("VTHINKER_SHARED", ROOT.parent / "shared"))
ENV_DIR = Path(os.environ.get("VTHINKER_ENV_DIR", ROOT / ".venvs"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint, built once per test session."""
    from vthinker_plugins.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def mathvision_dir() -> Path:
    path = SHARED / "data" / "mathvision"
    if not (path / "testmini.jsonl").exists():
        pytest.fail(f"MathVision data not found at {path}; set VTHINKER_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def main_bin() -> Path:
    """bin/ of the main environment (TRL 1.16, lmms-eval, VLMEvalKit): the one running the tests."""
    return Path(sys.executable).parent


@pytest.fixture(scope="session")
def sft_bin() -> Path:
    """bin/ of the LlamaFactory environment."""
    path = ENV_DIR / "sft" / "bin"
    if not (path / "llamafactory-cli").exists():
        pytest.fail(f"LlamaFactory environment missing at {path}: run scripts/setup.sh")
    return path


@pytest.fixture(scope="session")
def set_checkpoint_weights():
    """``set_checkpoint_weights(path, {name: value})`` fills weights of a safetensors file in place
    (checkpoint names, e.g. ``model.norm.weight``): a known value a resumed run must come back with."""
    from safetensors.torch import load_file, save_file

    def fill(path: Path, values: dict[str, float]) -> None:
        weights = load_file(str(path))
        for name, value in values.items():
            assert name in weights, f"{path} has no weight {name!r}: {sorted(weights)[:5]}..."
            weights[name] = weights[name].clone().fill_(value)
        save_file(weights, str(path), metadata={"format": "pt"})

    return fill


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Importing VLMEvalKit's model zoo switches autograd off process-wide; switch it back on
    before every test and its fixtures (e.g. a training step), as a fresh process would have it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_grad_enabled(True)
