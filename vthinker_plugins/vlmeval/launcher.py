"""Run VLMEvalKit's runner with the V-Thinker plugin loaded: ``vthinker vlmeval`` / ``vthinker-vlmeval``.

Takes VLMEvalKit's own arguments plus ``--lmudata`` and ``--vthinker-model NAME=SPEC``; builds missing
TSVs and checks the judge first, makes ``--limit`` per task for V-Thinker datasets, and exits non-zero
when any model x dataset combination failed. Options and example: docs/harnesses.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vthinker_plugins.vlmeval.compat import limit_per_task, vlmeval_parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """VLMEvalKit's arguments plus ``--lmudata`` and ``--vthinker-model``."""
    source = vlmeval_parser()
    parser.description = (parser.description or "") + " (VLMEvalKit's arguments, plus --lmudata and --vthinker-model)"
    for action in source._actions:  # the documented argparse way (parents=) needs the parser at creation
        if action.dest == "help":
            continue
        parser._add_action(action)
    parser.add_argument("--lmudata", default=None, help="folder of the dataset TSVs ($LMUData)")
    parser.add_argument(
        "--vthinker-model",
        action="append",
        default=[],
        metavar="NAME=SPEC[,KEY=VALUE...]",
        help="register NAME as V-Thinker on backend SPEC (checkpoint, vllm:PATH, openai:MODEL) with options",
    )


def _register_extra_models(entries: list[str]) -> list[str]:
    from vthinker_plugins.backends import parse_options
    from vthinker_plugins.vlmeval import register_model

    names = []
    for entry in entries:
        name, _, rest = entry.partition("=")
        if not name or not rest:
            raise SystemExit(f"--vthinker-model {entry!r}: expected NAME=SPEC[,KEY=VALUE...]")
        spec, *pairs = rest.split(",")
        register_model(name, spec, **parse_options(pairs))
        names.append(name)
    return names


def _failures(work_dir: str, models: list[str]) -> list[str]:
    """Model x dataset combinations VLMEvalKit recorded as failed in its ``status.json`` files."""
    failed = []
    for model in models:
        status_file = Path(work_dir) / model / "status.json"
        if not status_file.exists():
            failed.append(f"{model}: no status file {status_file}")
            continue
        status = json.loads(status_file.read_text(encoding="utf-8"))
        for dataset, entry in (status.get("datasets") or {}).items():
            if entry.get("error_message"):
                failed.append(f"{model} x {dataset}: {entry['error_message']}")
    return failed


def _prepare_datasets(names: list[str]) -> None:
    """Build the V-Thinker datasets among ``names`` once (their TSVs are written if missing), so that bad
    or unreachable data stops the launcher with one line instead of a traceback inside VLMEvalKit."""
    from vthinker_plugins.data.sources import DataError
    from vthinker_plugins.vlmeval.datasets import DATASET_CLASSES

    for name in names:
        cls = next((c for c in DATASET_CLASSES if name in c.supported_datasets()), None)
        if cls is None:
            continue
        try:
            cls(dataset=name)
        except DataError as exc:
            raise SystemExit(f"vthinker vlmeval: {name}: {exc}") from None


def _warn_if_judge_unreachable(args: argparse.Namespace) -> None:
    from vthinker_plugins.factory import JudgeSettings, make_judge, unreachable_judge_note

    url = getattr(args, "judge_base_url", None) or os.environ.get("VTHINKER_JUDGE_URL")
    model = getattr(args, "judge", None) or os.environ.get("VTHINKER_JUDGE_MODEL")
    if not url or not model:
        return
    judge = make_judge(JudgeSettings(model, url.rstrip("/"), api_key=getattr(args, "judge_key", None)))
    note = unreachable_judge_note(judge, "items")
    if note is not None:
        print(f"vthinker vlmeval: WARNING: {note}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """Register the plugin and run VLMEvalKit's runner with ``args``."""
    if args.lmudata:
        os.makedirs(args.lmudata, exist_ok=True)
        os.environ["LMUData"] = str(Path(args.lmudata).resolve())
    work_dir = os.environ.get("MMEVAL_ROOT", args.work_dir)
    os.environ.setdefault("VTHINKER_VLMEVAL_IMAGE_DIR", str(Path(work_dir).resolve() / "vthinker_images"))

    import vlmeval.run
    from vlmeval.smp import load_env

    import vthinker_plugins.vlmeval  # noqa: F401 - registers datasets and models

    load_env()
    _register_extra_models(args.vthinker_model)
    _prepare_datasets(list(args.data or []))
    _warn_if_judge_unreachable(args)
    limit_per_task()
    if args.nproc is not None:  # what vlmeval.run.parse_args does after parsing
        args.api_nproc = args.nproc
    models = list(args.model or [])
    if args.config:
        from vlmeval.smp import load

        models = list(load(args.config)["model"])
    vlmeval.run.run_task(args)
    failed = _failures(work_dir, models)
    for line in failed:
        print(f"vthinker vlmeval: FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def console_main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vthinker-vlmeval`` console script."""
    parser = argparse.ArgumentParser(prog="vthinker-vlmeval", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return main(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(console_main())
