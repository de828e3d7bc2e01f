"""A wheel install (not a checkout) carries everything the plugins need at run time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tracked_copy(dest: Path) -> Path:
    """The project's tracked files only (a build must not see .venvs, caches or outputs)."""
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, proc.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_wheel_ships_the_lmms_eval_tasks_and_finds_them(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        import pytest

        pytest.skip("needs a git checkout to know the tracked files")
    src = _tracked_copy(tmp_path / "src")
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, env=env, capture_output=True)
    wheel = next((tmp_path / "dist").glob("vthinker_plugins-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for task in ("vtbench/vtbench.yaml", "vtbench/_default_template_yaml", "vthinker_mathvision/source_test.jsonl",
                 "vthinker_wemath/vthinker_wemath.yaml", "vthinker_wemath/source.jsonl",
                 "vthinker_visulogic/vthinker_visulogic.yaml", "vthinker_visulogic/source.jsonl"):
        assert any(n.endswith(f"data/share/vthinker-plugins/eval_tasks/lmms_eval/{task}") for n in names), task

    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would uninstall the environment's own (editable) copy first.
    subprocess.run([*pip, "install", "--no-deps", "--ignore-installed", "-q", "--prefix", str(prefix), str(wheel)],
                   check=True, env=env, capture_output=True)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    code = (
        "import vthinker_plugins, sys\n"
        "from vthinker_plugins.lmms_eval.cli import task_dir\n"
        "print(vthinker_plugins.__file__); print(task_dir())\n"
    )
    run_env = {k: v for k, v in env.items() if k != "VTHINKER_LMMS_TASKS"} | {"PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    package_file, tasks = out.stdout.split()
    assert Path(package_file).is_relative_to(site), "the installed copy, not the checkout, must be imported"
    assert Path(tasks) == (prefix / "share" / "vthinker-plugins" / "eval_tasks" / "lmms_eval").resolve()
    # The environment running the tests keeps its own install (pip must not have replaced it).
    assert (Path(sys.executable).parent / "vthinker").exists()
    from importlib.metadata import entry_points

    assert any(ep.name == "vthinker" for ep in entry_points(group="lmms_eval.models"))
