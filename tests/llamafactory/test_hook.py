"""The start-up hook that registers vthinker_qwen2_vl in every LlamaFactory process."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vthinker_plugins.llamafactory import TEMPLATE_NAME
from vthinker_plugins.llamafactory.hook import PTH_LINE, PTH_NAME, install_pth, main, uninstall_pth

PROBE = """
import site, sys
site.addsitedir({site_dir!r})
heavy = [m for m in ("torch", "transformers", "llamafactory") if m in sys.modules]
print("HEAVY", heavy)
import llamafactory.data.template as t
print("REGISTERED", {name!r} in t.TEMPLATES)
from vthinker_plugins.llamafactory.template import register
print("AGAIN", register())
"""


def probe(sft_bin: Path, site_dir: Path, env: dict[str, str]) -> dict[str, str]:
    code = PROBE.format(site_dir=str(site_dir), name=TEMPLATE_NAME)
    proc = subprocess.run([str(sft_bin / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


@pytest.fixture()
def clean_env(lf_env) -> dict[str, str]:
    # Without the fallback sitecustomize, so only the .pth under test is active.
    return {k: v for k, v in lf_env.items() if k != "PYTHONPATH"}


def test_pth_registers_lazily_and_cheaply(sft_bin, clean_env, tmp_path) -> None:
    path = install_pth(tmp_path)
    assert path.name == PTH_NAME and path.read_text() == PTH_LINE
    out = probe(sft_bin, tmp_path, clean_env)
    assert out["HEAVY"] == "[]"  # start-up imports nothing heavy
    assert out["REGISTERED"] == "True"
    assert out["AGAIN"] == "False"  # idempotent: no 'already exists' error on a second registration


def test_hook_can_be_switched_off(sft_bin, clean_env, tmp_path) -> None:
    install_pth(tmp_path)
    out = probe(sft_bin, tmp_path, {**clean_env, "VTHINKER_NO_LF_HOOK": "1"})
    assert out["REGISTERED"] == "False"


def test_pth_line_is_harmless_without_the_package(tmp_path) -> None:
    python = shutil.which("python3")
    # Isolated interpreter without the package: the line must do nothing and raise nothing.
    proc = subprocess.run([python, "-I", "-c", PTH_LINE + "print('ok')"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_cli_install_status_uninstall(tmp_path, capsys) -> None:
    assert main(["install", "--site-dir", str(tmp_path)]) == 0
    assert (tmp_path / PTH_NAME).exists()
    main(["status", "--site-dir", str(tmp_path)])
    assert "installed" in capsys.readouterr().out
    assert uninstall_pth(tmp_path) and not (tmp_path / PTH_NAME).exists()


def test_cli_reruns_quietly_where_the_hook_is_active(sft_bin, clean_env) -> None:
    """In the SFT environment the .pth has loaded the finder before ``python -m ...hook`` runs: the command
    module is not the start-up one, so a re-run (as ``scripts/setup.sh`` does) prints no runpy warning."""
    proc = subprocess.run([str(sft_bin / "python"), "-W", "error::RuntimeWarning", "-c",
                           "import sys, runpy; print('startup' in str(sys.modules.get("
                           "'vthinker_plugins.llamafactory.startup'))); sys.argv = ['hook', 'status']; "
                           "runpy.run_module('vthinker_plugins.llamafactory.hook', run_name='__main__')"],
                          env=clean_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == "True" and "installed" in proc.stdout
