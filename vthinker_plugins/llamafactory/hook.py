"""Make plain ``llamafactory-cli train`` load our code: the ``vthinker_qwen2_vl`` template and the
checkpoint-resume fix (``python -m vthinker_plugins.llamafactory.hook install|status|uninstall``).

``llamafactory-cli`` imports no user module and re-launches itself under torchrun, so a ``.pth`` file
(:func:`install_pth`) installs the import finder of :mod:`.startup` in every process.
Design notes: docs/training.md.
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

PTH_NAME = "vthinker_plugins_llamafactory.pth"
# One line; tolerant of the package having been uninstalled (then it does nothing).
PTH_LINE = (
    "import importlib.util as _vt_u; "
    "_vt_u.find_spec('vthinker_plugins') is not None and "
    "__import__('vthinker_plugins.llamafactory.startup', fromlist=['install']).install()\n"
)


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
