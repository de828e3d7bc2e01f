"""Train V-Thinker with GRPO: the entry point users know from TRL / open-r1.

``accelerate launch -m vthinker_plugins.trl.grpo --config recipes/<name>.yaml`` or ``vthinker grpo``;
the YAML holds fields of :class:`GRPOScriptArguments`, :class:`~vthinker_plugins.trl.config.VThinkerGRPOConfig`
and TRL's ``ModelConfig``, and ``--name value`` overrides them. Details: docs/training.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("vthinker_plugins.trl.grpo")


@dataclass
class GRPOScriptArguments:
    """Where the RL data comes from."""

    dataset: str | None = field(
        default=None,
        metadata={"help": "RL data: hub id, local parquet/jsonl file or folder, or a save_to_disk folder."},
    )
    dataset_split: str | None = field(default=None, metadata={"help": "Split (hub) or file-name prefix (local)."})
    eval_dataset: str | None = field(default=None, metadata={"help": "Optional evaluation data, same forms."})
    eval_split: str | None = field(default=None, metadata={"help": "Split of the evaluation data."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    image_base_dir: str | None = field(
        default=None, metadata={"help": "Folder that relative image paths resolve against (default: the data's)."}
    )


def parse(argv: list[str] | None = None) -> tuple[Any, Any, Any]:
    """``(script_args, training_args, model_args)`` from ``--config`` YAML and command-line overrides."""
    from trl import ModelConfig, TrlParser

    from vthinker_plugins.trl.config import VThinkerGRPOConfig

    parser = TrlParser((GRPOScriptArguments, VThinkerGRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    if not script_args.dataset:
        parser.error("--dataset is required (in the YAML or on the command line)")
    if not model_args.model_name_or_path:
        parser.error("--model_name_or_path is required (in the YAML or on the command line)")
    return script_args, training_args, model_args


def load_processor(args: Any, model_args: Any) -> Any:
    """The run's processor, left-padded. max_pixels/min_pixels are applied by the trainer to whichever
    processor it gets (passing them to from_pretrained is deprecated in transformers, gone in 5.23)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=args.trust_remote_code,
        padding_side="left",
    )


def build_trainer(script_args: Any, args: Any, model_args: Any, processor: Any = None, **trainer_options: Any) -> Any:
    """The dataset, processor and :class:`VThinkerGRPOTrainer` of a run; ``trainer_options`` go to the trainer
    (e.g. ``rollout_logits_processors``)."""
    from trl import get_peft_config

    from vthinker_plugins.protocol import PromptSet
    from vthinker_plugins.trl.data import load_rl_dataset
    from vthinker_plugins.trl.trainer import VThinkerGRPOTrainer

    prompts = PromptSet.from_files(args.system_prompt_file, args.user_prompt_file)
    train = load_rl_dataset(
        script_args.dataset,
        script_args.dataset_split,
        limit=script_args.limit,
        prompts=prompts,
        image_base_dir=script_args.image_base_dir,
    )
    evaluation = None
    if script_args.eval_dataset:
        evaluation = load_rl_dataset(
            script_args.eval_dataset, script_args.eval_split, prompts=prompts, image_base_dir=script_args.image_base_dir
        )
    init_kwargs = dict(args.model_init_kwargs or {})
    if model_args.dtype is not None:
        init_kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation is not None:
        init_kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    args.model_init_kwargs = init_kwargs or None
    if processor is None:
        processor = load_processor(args, model_args)
    return VThinkerGRPOTrainer(
        model=model_args.model_name_or_path,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        **trainer_options,
    )


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    path = Path(output_dir)
    return get_last_checkpoint(str(path)) if path.is_dir() else None


def run(script_args: Any, args: Any, model_args: Any, **build_options: Any) -> Any:
    """Train (resuming from the last checkpoint in ``output_dir`` if any) and save the model;
    ``build_options`` go to :func:`build_trainer`."""
    trainer = build_trainer(script_args, args, model_args, **build_options)
    checkpoint = args.resume_from_checkpoint or last_checkpoint(args.output_dir)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(args.output_dir)
    return trainer


# --------------------------------------------------------------------------- `vthinker grpo`

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``vthinker grpo --config FILE [--field value ...]``: every config field is accepted."""
    parser.add_argument("--config", help="recipe YAML (e.g. recipes/grpo_cpu_smoke.yaml)")
    parser.epilog = (
        "Any field of GRPOScriptArguments, VThinkerGRPOConfig (TRL's GRPOConfig plus max_rounds, "
        "max_tool_images, sandbox_*, *_weight, judge_*) or TRL's ModelConfig is accepted as --name value; "
        "`python -m vthinker_plugins.trl.grpo --help` lists them all."
    )
    base_parse = parser.parse_known_args

    # The dispatcher calls parse_args; the config fields are parsed by TRL's parser in main().
    def parse_args(args: list[str] | None = None, namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        known, rest = base_parse(args, namespace)
        known.overrides = rest
        return known

    parser.parse_args = parse_args  # type: ignore[method-assign]


def main(args: argparse.Namespace | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args is None:
        argv = sys.argv[1:]
    else:
        argv = (["--config", args.config] if args.config else []) + list(getattr(args, "overrides", []))
    run(*parse(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
