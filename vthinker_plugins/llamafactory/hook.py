"""Make plain ``llamafactory-cli train`` load our code: the ``vthinker_qwen2_vl`` template and the
checkpoint-resume fix.

``llamafactory-cli`` imports no user module and re-launches itself under torchrun, so a ``.pth`` file
(:func:`install_pth`) installs a small import finder in every process; when one of :data:`TARGETS` is
imported, our function runs on it. ``VTHINKER_NO_LF_HOOK=1`` turns it off. Design notes: docs/training.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

#: LlamaFactory module -> "module:function" of ours called with it right after it has executed.
TARGETS = {
    "llamafactory.data.template": "vthinker_plugins.llamafactory.template:register",
    "llamafactory.train.sft.trainer": "vthinker_plugins.llamafactory.compat:patch_sft_trainer",
}
PTH_NAME = "vthinker_plugins_llamafactory.pth"
# One line; tolerant of the package having been uninstalled (then it does nothing).
PTH_LINE = (
    "import importlib.util as _vt_u; "
    "_vt_u.find_spec('vthinker_plugins') is not None and "
    "__import__('vthinker_plugins.llamafactory.hook', fromlist=['install']).install()\n"
)


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


def install_pth(site_dir: str | Path | None = None) -> Path:
    """Write the ``.pth`` file into ``site_dir`` (default: this interpreter's site-packages)."""
    target = Path(site_dir or sysconfig.get_paths()["purelib"])
    path = target / PTH_NAME
    path.write_text(PTH_LINE, encoding="utf-8")
    return path


def uninstall_pth(site_dir: str | Path | None = None) -> bool:
    path = Path(site_dir or sysconfig.get_paths()["purelib"]) / PTH_NAME
    if path.exists():
        path.unlink()
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vthinker_plugins.llamafactory.hook",
        description="install the start-up hook that registers the vthinker_qwen2_vl LlamaFactory template and "
        "makes LlamaFactory resume every weight from a checkpoint",
    )
    parser.add_argument("action", choices=("install", "uninstall", "status"))
    parser.add_argument("--site-dir", default=None, help="site-packages folder (default: this interpreter's)")
    args = parser.parse_args(argv)
    if args.action == "install":
        print(f"wrote {install_pth(args.site_dir)}")
    elif args.action == "uninstall":
        print("removed" if uninstall_pth(args.site_dir) else "not installed")
    else:
        path = Path(args.site_dir or sysconfig.get_paths()["purelib"]) / PTH_NAME
        print(f"{path}: {'installed' if path.exists() else 'missing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
