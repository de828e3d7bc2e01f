"""GRPO whose rollouts follow a script: the CPU smoke recipe and tests.

    python -m vthinker_plugins.testing.scripted_grpo --script recipes/grpo_cpu_smoke.script.jsonl \\
        --config recipes/grpo_cpu_smoke.yaml [--field value ...]

A random model never writes code, so the smoke forces its tokens: the real ``model.generate``
runs, a logits processor (:func:`~vthinker_plugins.testing.scripted.scripted_logits_processors`)
masks all but the script's next token. Everything else is ``vthinker grpo``
(:mod:`vthinker_plugins.trl.grpo`); the production command and config have no script option.
Transformers generation only (``use_vllm`` must be off).
"""

from __future__ import annotations

import argparse
import logging
import sys

from vthinker_plugins.testing.scripted import scripted_logits_processors
from vthinker_plugins.trl import grpo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vthinker_plugins.testing.scripted_grpo",
        description="vthinker grpo with scripted rollouts (every other argument is vthinker grpo's)",
        add_help=False,
    )
    parser.add_argument("--script", required=True, help='JSONL of {"id": "*" | "rollout<i>", "rounds": [...]}')
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    script_args, args, model_args = grpo.parse(rest)
    if args.use_vllm:
        raise SystemExit("--script needs transformers generation (use_vllm=False)")
    processor = grpo.load_processor(args, model_args)
    grpo.run(script_args, args, model_args, processor=processor,
             rollout_logits_processors=scripted_logits_processors(processor, known.script))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
