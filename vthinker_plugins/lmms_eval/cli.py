"""The ``lmms_eval`` command: lmms-eval 0.7.3 with the V-Thinker tasks always included.

lmms-eval finds external tasks only through ``--include_path`` and exits 0 after a failed evaluation.
This command runs lmms-eval's own CLI with ``eval_tasks/lmms_eval`` added to every task search, and
exits non-zero when an evaluation failed. Design notes: docs/harnesses.md.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from vthinker_plugins.lmms_eval.compat import count_failures, install_task_path

#: Where the task YAMLs live in a checkout (editable install) of this project.
_REPO_TASKS = Path(__file__).resolve().parents[2] / "eval_tasks" / "lmms_eval"
#: Where a wheel install puts them (setup.cfg ``data_files``), relative to an installation prefix.
_SHARED_TASKS = Path("share") / "vthinker-plugins" / "eval_tasks" / "lmms_eval"


def _candidates() -> list[Path]:
    # A wheel installed with --prefix/--target/--user lands beside its own lib/ folder, not
    # necessarily under sys.prefix: <prefix>/lib/python3.X/site-packages/vthinker_plugins/lmms_eval.
    parents = Path(__file__).resolve().parents
    prefixes = [Path(sys.prefix), Path(sysconfig.get_path("data"))]
    if len(parents) > 5:
        prefixes.insert(0, parents[5])
    return [_REPO_TASKS, *(prefix / _SHARED_TASKS for prefix in prefixes)]


def task_dir() -> Path:
    """The folder of V-Thinker's lmms-eval task YAMLs (``$VTHINKER_LMMS_TASKS`` overrides).

    A checkout uses its own ``eval_tasks/lmms_eval``; a wheel install the copy under
    ``<prefix>/share/vthinker-plugins``.
    """
    override = os.environ.get("VTHINKER_LMMS_TASKS")
    tried = [Path(override).expanduser()] if override else _candidates()
    for path in tried:
        if (path / "vtbench" / "vtbench.yaml").exists():
            return path.resolve()
    raise FileNotFoundError(
        "V-Thinker lmms-eval tasks not found (looked in " + ", ".join(map(str, tried))
        + "); set VTHINKER_LMMS_TASKS to the eval_tasks/lmms_eval folder"
    )


def main(argv: list[str] | None = None) -> int:
    """Run lmms-eval's CLI with ``argv`` (default: this process's arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    install_task_path(task_dir())
    failures = count_failures()
    from lmms_eval.cli.dispatch import main as lmms_eval_main

    sys.argv = ["lmms_eval", *argv]
    try:
        lmms_eval_main()
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a one-line error (bad task data, unreachable hub)
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code or (1 if failures else 0)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
