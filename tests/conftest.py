"""Fixtures shared by every test area: the tiny model, the real MathVision data, the environments, and the
LlamaFactory environment in which plain ``llamafactory-cli`` knows the ``vthinker_qwen2_vl`` template."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from vthinker_plugins.llamafactory.hook import PTH_NAME, install_pth

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
    from vthinker_plugins.testing.tiny_model import build_tiny_model

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


def site_packages(bin_dir: Path) -> Path:
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="session")
def lf_env(sft_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for LlamaFactory subprocesses (and their torchrun workers).

    The hook is normally installed into the SFT environment's site-packages by scripts/setup.sh
    (``python -m vthinker_plugins.llamafactory.hook install``). Where it is not (yet), the same
    ``.pth`` file is put into a temporary site dir that a ``sitecustomize`` on PYTHONPATH adds,
    which every process of the run, torchrun workers included, inherits.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
        PATH=f"{sft_bin}{os.pathsep}{env.get('PATH', '')}", DISABLE_VERSION_CHECK="1", CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
    )
    if not (site_packages(sft_bin) / PTH_NAME).exists():
        warnings.warn(f"{PTH_NAME} not installed in {sft_bin.parent}; using a temporary site dir", stacklevel=1)
        site_dir = tmp_path_factory.mktemp("lf-site")
        install_pth(site_dir)
        (site_dir / "sitecustomize.py").write_text(f"import site\nsite.addsitedir({str(site_dir)!r})\n")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site_dir), env.get("PYTHONPATH", "")) if p)
    return env


def run_llamafactory(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> str:
    """Run llamafactory-cli; on failure show the end of its log."""
    bin_dir = Path(env["PATH"].split(os.pathsep)[0])
    proc = subprocess.run(
        [str(bin_dir / "llamafactory-cli"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"llamafactory-cli {' '.join(args)} exited {proc.returncode}:\n{log[-6000:]}")
    return log


@pytest.fixture(scope="session")
def run_lf():
    """``run_lf(args, env, cwd)`` runs llamafactory-cli and returns its log (fails the test on error)."""
    return run_llamafactory
