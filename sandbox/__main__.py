"""``python -m sandbox doctor`` | ``python -m sandbox demo [--out DIR]``."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("doctor", help="report which isolation layers are active")
    d.add_argument("--json", action="store_true")
    m = sub.add_parser("demo", help="run a sample drawing program on a sample image")
    m.add_argument("--out", default="outputs/sandbox_demo")
    args = ap.parse_args(argv)
    if args.cmd == "doctor":
        from .doctor import doctor, format_report

        info = doctor()
        print(json.dumps(info, indent=2) if args.json else format_report(info))
        return 0 if info["auto"].get("ok") else 1
    from .demo import run_demo

    return run_demo(args.out)


if __name__ == "__main__":
    sys.exit(main())
