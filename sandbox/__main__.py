"""``python -m sandbox doctor`` | ``python -m sandbox demo [--out DIR]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    from .doctor import add_arguments
    from .doctor import main as doctor_main

    add_arguments(sub.add_parser("doctor", help="report which isolation layers are active"))
    m = sub.add_parser("demo", help="run a sample drawing program on a sample image")
    m.add_argument("--out", default="outputs/sandbox_demo")
    args = ap.parse_args(argv)
    if args.cmd == "doctor":
        return doctor_main(args)
    from .demo import run_demo

    return run_demo(args.out)


if __name__ == "__main__":
    sys.exit(main())
