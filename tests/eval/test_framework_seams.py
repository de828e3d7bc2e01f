"""The lmms-eval and VLMEvalKit seams are pinned: on another version the suite says what to re-check, and
their overrides live in the seam modules only."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from vthinker_plugins.lmms_eval import compat as lmms_compat
from vthinker_plugins.vlmeval import compat as vlmeval_compat

PACKAGE = Path(__file__).resolve().parents[2] / "vthinker_plugins"


def test_installed_harnesses_are_the_tested_versions() -> None:
    lmms_compat.check_version()
    vlmeval_compat.check_version()


def test_another_version_fails_clearly() -> None:
    with pytest.raises(RuntimeError, match=r"written against lmms-eval 0\.7\.3, found 0\.8\.0: re-check"):
        lmms_compat.check_version("0.8.0")
    with pytest.raises(RuntimeError, match=r"written against ms-vlmeval 0\.0\.20, found 0\.0\.21: re-check"):
        vlmeval_compat.check_version("0.0.21")


def test_overrides_of_harness_code_live_in_the_seams() -> None:
    """Assignments to lmms-eval / VLMEvalKit attributes, and patches of argparse, appear in compat.py only."""
    patch = re.compile(r"^\s*(?:TaskManager\.\w+|lmms_main\.\w+|vlmeval\.\w+(?:\.\w+)*|argparse\.\w+(?:\.\w+)*)\s*=",
                       re.MULTILINE)
    offenders = []
    for package in ("lmms_eval", "vlmeval"):
        for path in (PACKAGE / package).glob("*.py"):
            if path.name != "compat.py" and patch.search(path.read_text(encoding="utf-8")):
                offenders.append(path.name)
    assert not offenders, f"harness overrides outside the seam modules: {offenders}"


def test_vlmeval_parser_is_taken_without_touching_argparse() -> None:
    before = argparse.ArgumentParser.parse_args
    parser = vlmeval_compat.vlmeval_parser()
    assert argparse.ArgumentParser.parse_args is before
    import vlmeval.run

    assert vlmeval.run.argparse is argparse
    dests = {action.dest for action in parser._actions}
    assert {"data", "model", "work_dir", "mode", "reuse"} <= dests
    # The captured parser parses VLMEvalKit's arguments as VLMEvalKit would.
    args = argparse.ArgumentParser.parse_args(parser, ["--data", "VTBench", "--model", "m"])
    assert args.data == ["VTBench"] and args.model == ["m"]


def test_lmms_eval_task_search_includes_our_folder(tmp_path: Path) -> None:
    from lmms_eval.tasks import TaskManager

    from vthinker_plugins.lmms_eval.cli import task_dir

    original = TaskManager.initialize_tasks
    try:
        folder = lmms_compat.install_task_path(task_dir())
        assert lmms_compat.install_task_path(task_dir()) == folder  # idempotent: wrapped once
        assert TaskManager.initialize_tasks._vthinker_folder == str(folder)
    finally:
        TaskManager.initialize_tasks = original


def test_results_folder_is_named_after_the_pretrained_model_like_lmms_eval() -> None:
    assert lmms_compat.results_model_name("pretrained=/models/V-Thinker-7B,device=cpu") == "/models/V-Thinker-7B"
    assert lmms_compat.results_model_name("") == ""
