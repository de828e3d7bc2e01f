"""The ``vthinker`` command. Each subcommand lives in its own module, imported only when used,
so ``vthinker run`` does not pay for TRL and ``vthinker grpo`` does not pay for lmms-eval."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module exposing add_arguments(parser) and main(args) -> int | None, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("vthinker_plugins.run_job", "run a model through the code loop on a benchmark, score it, write a report"),
    "make-tiny-model": ("vthinker_plugins.testing.tiny_model",
                        "write a tiny random Qwen2.5-VL checkpoint (offline tests)"),
    "make-vtbench-sample": ("vthinker_plugins.data.vtbench_sample", "generate a small VTBench-format sample"),
    "make-wemath-sample": ("vthinker_plugins.data.wemath_sample", "generate a small We-Math-format sample"),
    "make-visulogic-sample": ("vthinker_plugins.data.visulogic_sample", "generate a small VisuLogic-format sample"),
    "make-interaction-sample": ("vthinker_plugins.data.interaction_sample",
                                "generate a small V-Interaction-format sample (stage-2 smoke data)"),
    "convert": ("vthinker_plugins.data.cli", "convert V-Perception / V-Interaction data for LlamaFactory"),
    "synth-perception": ("vthinker_plugins.data.synth_perception", "synthesise V-Perception-style data"),
    "flywheel": ("vthinker_plugins.flywheel.cli", "the data evolution flywheel: knowledge graph, synthesis, "
                 "checker-repairer, difficulty expansion"),
    "grpo": ("vthinker_plugins.trl.grpo", "GRPO training with the sandbox as a multi-turn image tool"),
    "vlmeval": ("vthinker_plugins.vlmeval.launcher", "run VLMEvalKit with the V-Thinker plugin loaded"),
    "doctor": ("sandbox.doctor", "report the sandbox's active isolation layers"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vthinker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = _top_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"vthinker {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
