"""The seam with VLMEvalKit's internals (ms-vlmeval): every override of VLMEvalKit code is here.

Written against ms-vlmeval 0.0.20; ``tests/eval/test_framework_seams.py`` fails with a clear message on
another version. VLMEvalKit has no plugin API: :func:`vlmeval_parser` reads the runner's own argument
parser, :func:`limit_per_task` makes ``--limit`` per task for V-Thinker datasets, and
:func:`add_datasets` / :func:`add_models` add to its registries. Design notes: docs/seams.md.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vthinker_plugins.seam_versions import check_tested_versions

TESTED_VLMEVAL_VERSION = "0.0.20"


def check_version(version: str | None = None) -> None:
    """Raise with a clear message unless ms-vlmeval is the version this seam was written for."""
    check_tested_versions("vlmeval.compat", {"ms-vlmeval": [TESTED_VLMEVAL_VERSION]}, {"ms-vlmeval": version},
                          "vlmeval.run.parse_args and vlmeval.run.infer_data_job")


def add_datasets(classes: Sequence[type], exported: Mapping[str, type]) -> None:
    """Append dataset classes to ``vlmeval.dataset.DATASET_CLASSES`` / ``SUPPORTED_DATASETS`` and expose
    them on ``vlmeval.dataset`` under ``exported`` names (for ``--config``); idempotent."""
    import vlmeval.dataset as vd

    for cls in classes:
        if cls not in vd.DATASET_CLASSES:
            vd.DATASET_CLASSES.append(cls)
        for name in cls.supported_datasets():
            if name not in vd.SUPPORTED_DATASETS:
                vd.SUPPORTED_DATASETS.append(name)
    for name, cls in exported.items():
        setattr(vd, name, cls)


def add_models(factories: Mapping[str, Callable[..., Any]], exported: Mapping[str, type] | None = None) -> None:
    """Put model factories into ``vlmeval.config.supported_VLM`` and classes on ``vlmeval.vlm``; idempotent."""
    import vlmeval.config
    import vlmeval.vlm

    vlmeval.config.supported_VLM.update(factories)
    for name, cls in (exported or {}).items():
        setattr(vlmeval.vlm, name, cls)


class _Captured(Exception):
    pass


class _CapturingParser(argparse.ArgumentParser):
    def parse_args(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise _Captured(self)


def vlmeval_parser() -> argparse.ArgumentParser:
    """VLMEvalKit's own argument parser, built by ``vlmeval.run.parse_args`` and taken before it parses.

    Only ``vlmeval.run``'s own reference to ``argparse`` is swapped, for the call: no other code in the
    process sees a changed ``argparse``."""
    import vlmeval.run

    original = vlmeval.run.argparse
    vlmeval.run.argparse = types.SimpleNamespace(**{**vars(argparse), "ArgumentParser": _CapturingParser})
    try:
        vlmeval.run.parse_args()
    except _Captured as captured:
        return captured.args[0]
    finally:
        vlmeval.run.argparse = original
    raise RuntimeError("could not read VLMEvalKit's arguments from vlmeval.run.parse_args")


def limit_per_task() -> None:
    """Make ``--limit`` take the first N items of each task of a V-Thinker dataset. VLMEvalKit 0.0.20 cuts
    ``dataset.data.iloc[:limit]`` inside ``vlmeval.inference.infer_data_job``, which ``vlmeval.run``
    calls with keyword arguments; the wrapper cuts per task first and passes no limit on."""
    import inspect

    import vlmeval.run

    from vthinker_plugins.vlmeval.datasets import _VThinkerDataset

    original = vlmeval.run.infer_data_job
    if getattr(original, "_vthinker_per_task", False):
        return
    if "limit" not in inspect.signature(original).parameters:
        raise RuntimeError("vthinker vlmeval: vlmeval.run.infer_data_job has no 'limit' parameter; this launcher "
                           f"is written for ms-vlmeval {TESTED_VLMEVAL_VERSION}")

    def infer_data_job(*args: Any, **kwargs: Any) -> Any:
        dataset, limit = kwargs.get("dataset"), kwargs.get("limit")
        if limit and isinstance(dataset, _VThinkerDataset):
            dataset.data = dataset.first_per_task(int(limit))
            kwargs["limit"] = None
        return original(*args, **kwargs)

    infer_data_job._vthinker_per_task = True  # type: ignore[attr-defined]
    vlmeval.run.infer_data_job = infer_data_job
