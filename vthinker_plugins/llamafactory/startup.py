"""The start-up half of the LlamaFactory hook: the import finder the ``.pth`` file installs in every process.

When LlamaFactory imports one of :data:`TARGETS`, our function runs on the fresh module. Kept apart from
:mod:`.hook` (the ``install|status|uninstall`` command), so running that command in a process where this
module is already loaded re-imports nothing. ``VTHINKER_NO_LF_HOOK=1`` turns it off.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import Any

#: LlamaFactory module -> "module:function" of ours called with it right after it has executed.
TARGETS = {
    "llamafactory.data.template": "vthinker_plugins.llamafactory.template:register",
    "llamafactory.train.sft.trainer": "vthinker_plugins.llamafactory.compat:patch_sft_trainer",
}


def _after_import(module: ModuleType) -> None:
    """Run our function of ``module`` (see :data:`TARGETS`) on it."""
    owner, function = TARGETS[module.__name__].split(":")
    getattr(importlib.import_module(owner), function)(module)


class _AfterImportLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs our function on the fresh module."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _after_import(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, ... for tracebacks and inspect
        return getattr(self._loader, name)


class LlamaFactoryHook(importlib.abc.MetaPathFinder):
    """Finds the :data:`TARGETS` modules like the other finders would, with a loader that runs our function."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None):
        if fullname not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _AfterImportLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Add the finder to ``sys.meta_path`` once (called from the ``.pth`` file)."""
    if os.environ.get("VTHINKER_NO_LF_HOOK") == "1":
        return
    if any(isinstance(f, LlamaFactoryHook) for f in sys.meta_path):
        return
    for name in TARGETS:  # already imported: apply directly
        if name in sys.modules:
            _after_import(sys.modules[name])
    sys.meta_path.insert(0, LlamaFactoryHook())
