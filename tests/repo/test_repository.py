"""Repository-level checks: lint, the README's promises, and the GPU environment's resolvability."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed in the main environment"
    proc = subprocess.run([ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block and readme.index("```bash") < 40, "README must open with a bash block"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci, f".ci/run must call the README's test command {commands[1]!r}"


def test_lock_files_pin_every_package() -> None:
    for lock in ("main.lock", "sft.lock"):
        lines = [ln for ln in (ROOT / "envs" / lock).read_text().splitlines() if ln and not ln.startswith("#")]
        loose = [ln for ln in lines if "==" not in ln]
        assert not loose, f"{lock}: unpinned lines {loose}"
    main = (ROOT / "envs" / "main.lock").read_text()
    sft = (ROOT / "envs" / "sft.lock").read_text()
    assert "trl==1.16.0" in main and "llamafactory==0.9.5" in sft and "torch==2.14.1" in main and "torch==2.14.1" in sft


@pytest.mark.skipif(os.environ.get("VTHINKER_SKIP_NETWORK") == "1", reason="VTHINKER_SKIP_NETWORK=1")
def test_main_environment_resolves_with_vllm() -> None:
    """The GPU set (main requirements + vllm 0.33.0, torch 2.14.0) must stay installable: a dry-run resolve."""
    pip = Path(sys.executable).parent / "pip"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_vllm_resolve.sh")],
        capture_output=True, text=True, env={**os.environ, "PIP": str(pip)}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    picked = dict(line.split("==") for line in proc.stdout.split())
    assert picked["vllm"] == "0.33.0" and picked["torch"] == "2.14.0"
    main_lock = (ROOT / "envs" / "main.lock").read_text()
    assert f"transformers=={picked['transformers']}" in main_lock, "the GPU set must keep the CPU set's transformers"


def test_every_vthinker_command_builds_its_parser() -> None:
    """Each subcommand module has the add_arguments/main pair the ``vthinker`` dispatcher calls
    (``vthinker doctor`` once crashed on a module without it)."""
    import argparse
    import importlib

    from vthinker_plugins.cli import COMMANDS

    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"vthinker {name}")
        module.add_arguments(parser)
        assert callable(module.main), name


def test_readme_says_which_environment_runs_each_command() -> None:
    from vthinker_plugins.cli import COMMANDS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Which environment runs what"):]
    table = section[: section.index("\n\n", section.index("| command |"))]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for name in COMMANDS:
        assert any(f"`vthinker {name}`" in row for row in rows), f"vthinker {name} has no environment in README"
    for command in ("llamafactory-cli train", "lmms_eval", "vthinker-vlmeval", "python -m sandbox doctor"):
        (row,) = [row for row in rows if command in row]
        assert row.rstrip(" |").endswith(("`.venvs/main`", "`.venvs/sft`")), row


def test_production_code_imports_no_test_tooling() -> None:
    """``vthinker_plugins.testing`` (the tiny model, scripted generation) is used by tests, benchmarks and the
    ``make-tiny-model`` command; the ``scripted:`` backend spec reaches it as an entry point (setup.cfg), so no
    other module imports it."""
    package = ROOT / "vthinker_plugins"
    allowed = {package / "cli.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in package.rglob("*.py")
        if package / "testing" not in path.parents and path not in allowed
        and re.search(r"vthinker_plugins\.testing|from \.+testing", path.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"production modules import the test tooling: {offenders}"


def test_framework_adapters_depend_on_the_core_never_on_each_other() -> None:
    """Each framework adapter (``trl``, ``llamafactory``, ``lmms_eval``, ``vlmeval``) imports the core only;
    token-level generation is the core's (``generation``), which, like the sandbox, imports no adapter; the TRL
    adapter takes nothing from the evaluation backends."""
    package = ROOT / "vthinker_plugins"
    adapters = ("trl", "llamafactory", "lmms_eval", "vlmeval")
    forbidden = {name: [a for a in adapters if a != name] for name in adapters}
    forbidden["trl"].append("backends")
    forbidden["generation"] = [*adapters, "backends", "testing"]
    offenders = []
    for folder, names in forbidden.items():
        regex = rf"^\s*(from|import) (vthinker_plugins\.|\.\.)({'|'.join(names)})\b"
        offenders += [str(path.relative_to(ROOT)) for path in (package / folder).rglob("*.py")
                      if re.search(regex, path.read_text(encoding="utf-8"), re.MULTILINE)]
    offenders += [str(path.relative_to(ROOT)) for path in (ROOT / "sandbox").rglob("*.py")
                  if re.search(r"^\s*(from|import) vthinker_plugins", path.read_text(encoding="utf-8"), re.MULTILINE)]
    assert not offenders, f"modules importing across the layers: {offenders}"


def test_private_upstream_names_are_used_in_the_seam_modules_only() -> None:
    """Outside ``*/compat.py`` and ``transformers_compat.py`` no module imports a private name of an upstream
    framework or reads one (``Upstream._name``, ``upstream.mod._name``) off a name imported from it."""
    import ast

    upstream = {"trl", "transformers", "lmms_eval", "vlmeval", "llamafactory", "vllm", "accelerate", "datasets",
                "peft", "deepspeed"}

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    offenders = []
    for path in sorted((ROOT / "vthinker_plugins").rglob("*.py")):
        if path.name in ("compat.py", "transformers_compat.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in upstream:
                        bound.add(alias.asname or alias.name.split(".")[0])
                        if any(map(private, alias.name.split("."))):
                            offenders.append(f"{where}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in upstream:
                for alias in node.names:
                    bound.add(alias.asname or alias.name)
                    if any(map(private, [*node.module.split("."), alias.name])):
                        offenders.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and private(node.attr):
                base = node.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in bound:
                    offenders.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, f"private upstream names outside the seam modules: {offenders}"
