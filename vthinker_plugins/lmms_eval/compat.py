"""The seam with lmms-eval's internals: every override of lmms-eval code is here.

Written against lmms-eval 0.7.3; ``tests/eval/test_framework_seams.py`` fails with a clear message on
another version. The ``lmms_eval`` command (:mod:`vthinker_plugins.lmms_eval.cli`) wraps
``TaskManager.initialize_tasks`` (our task folder in every task search) and
``lmms_eval.__main__.cli_evaluate_single`` (failures counted, bad data as one line), and reads the tracker's
private model name (result files beside lmms-eval's). Design notes: docs/seams.md.
"""

from __future__ import annotations

from pathlib import Path

from vthinker_plugins.seam_versions import check_tested_versions

TESTED_LMMS_EVAL_VERSION = "0.7.3"


def check_version(version: str | None = None) -> None:
    """Raise with a clear message unless lmms-eval is the version this seam was written for."""
    check_tested_versions("lmms_eval.compat", {"lmms-eval": [TESTED_LMMS_EVAL_VERSION]}, {"lmms-eval": version},
                          "TaskManager.initialize_tasks, lmms_eval.__main__.cli_evaluate_single and "
                          "GeneralConfigTracker._get_model_name")


def results_model_name(model_args: str) -> str:
    """The model name lmms-eval's evaluation tracker names its result folder after (the ``pretrained=``
    value of ``--model_args``, private ``GeneralConfigTracker._get_model_name``), so our extra result files
    land beside its own."""
    from lmms_eval.loggers.evaluation_tracker import GeneralConfigTracker

    return GeneralConfigTracker._get_model_name(model_args)


def install_task_path(path: Path) -> Path:
    """Make every lmms-eval ``TaskManager`` of this process also index our task folder."""
    from lmms_eval.tasks import TaskManager

    folder = str(path)
    original = TaskManager.initialize_tasks
    if getattr(original, "_vthinker_folder", None) == folder:
        return Path(folder)

    def initialize_tasks(self, include_path=None, include_defaults=True):
        paths = [] if include_path is None else [include_path] if isinstance(include_path, str) else list(include_path)
        if folder not in paths:
            paths.append(folder)
        return original(self, include_path=paths, include_defaults=include_defaults)

    initialize_tasks._vthinker_folder = folder  # type: ignore[attr-defined]
    TaskManager.initialize_tasks = initialize_tasks  # type: ignore[method-assign]
    return Path(folder)


def _data_error(exc: BaseException) -> BaseException | None:
    """The :class:`~vthinker_plugins.data.sources.DataError` behind ``exc`` (its causes, or the last attempt
    of a tenacity ``RetryError``), if any."""
    from vthinker_plugins.data.sources import DataError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DataError):
            return exc
        last = getattr(exc, "last_attempt", None)
        inner = last.exception() if last is not None and hasattr(last, "exception") else None
        exc = inner or exc.__cause__ or exc.__context__
    return None


def count_failures() -> list[BaseException]:
    """lmms-eval logs a failed evaluation and carries on with exit status 0; record failures instead."""
    import lmms_eval.__main__ as lmms_main

    failures: list[BaseException] = []
    original = lmms_main.cli_evaluate_single
    if getattr(original, "_vthinker_wrapped", False):
        return original._vthinker_failures  # type: ignore[attr-defined]

    def cli_evaluate_single(args):
        try:
            return original(args)
        except SystemExit as exc:  # ``--tasks list`` and friends end with sys.exit(): a success
            if exc.code not in (None, 0):
                failures.append(exc)
            raise
        except BaseException as exc:
            failures.append(exc)
            data_error = _data_error(exc)
            if data_error is not None:  # the user's data: one line instead of lmms-eval's traceback
                raise SystemExit(f"lmms_eval: bad data: {data_error}") from None
            raise

    cli_evaluate_single._vthinker_wrapped = True  # type: ignore[attr-defined]
    cli_evaluate_single._vthinker_failures = failures  # type: ignore[attr-defined]
    lmms_main.cli_evaluate_single = cli_evaluate_single
    return failures
