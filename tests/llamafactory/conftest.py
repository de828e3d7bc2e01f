"""Fixtures of the LlamaFactory tests: converted stage-1/stage-2 data and an environment in which
plain ``llamafactory-cli`` knows the ``vthinker_qwen2_vl`` template."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from hub_schema import interaction_rows, write_interaction_parquet, write_perception_parquet

from vthinker_plugins.cli import main as vthinker
from vthinker_plugins.llamafactory.hook import PTH_NAME, install_pth

ROOT = Path(__file__).resolve().parents[2]


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
