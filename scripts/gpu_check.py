"""The prepared GPU check (run by ``scripts/gpu_check.sh``): figures of the HF backend and of GRPO in bf16.

For each model, a Qwen2.5-VL built offline with random weights (the tiny test model, and a ~1B one of
the same shape family with the tiny model's tokenizer):

- the HF backend's interactive loop: scripted code blocks (a random model writes none) run in the
  real sandbox, their images fed back; samples/s, rounds, generated tokens/s;
- GRPO steps with :class:`~vthinker_plugins.trl.trainer.VThinkerGRPOTrainer`: s/step, the tool phase
  against its ideal (``benchmarks/grpo_tool_phase.py``'s measure), peak memory.

Figures go to ``--out`` (JSON) after each phase, so a run stopped by its time limit keeps what it measured.
``--cpu``: the tiny model only, two steps, on the CPU (the dry run the test suite makes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]

DRAW = (
    "<code>\n```python\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path)\n"
    "ImageDraw.Draw(img).line((0, 0, 80, 80), fill='red', width=3)\nimg.save(processed_path)\n"
    "print(processed_path)\n```\n</code>"
)
ROUNDS = ["<think>Let me mark it.\n" + DRAW, "Once more.\n" + DRAW, "The marks show it.</think><answer>4</answer>"]
WRONG = [*ROUNDS[:2], "The marks show it.</think><answer>5</answer>"]

#: ~1B parameters in Qwen2.5-VL's shape (text 16 x 1536, GQA 12/2 heads; ViT 16 x 1280), the tiny tokenizer.
ONE_B = {
    "text": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 16, "num_attention_heads": 12,
             "num_key_value_heads": 2, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                                           "mrope_section": [16, 24, 24]}},
    "vision": {"depth": 16, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 1536,
               "fullatt_block_indexes": [7, 15]},
    "max_pixels": 28 * 28 * 256,
}


def _bench_module() -> Any:
    """``benchmarks/grpo_tool_phase.py`` (its timed sandbox and interval arithmetic), imported by path."""
    spec = importlib.util.spec_from_file_location("grpo_tool_phase", ROOT / "benchmarks" / "grpo_tool_phase.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_b_config(tiny_config: Any) -> Any:
    """The tiny model's config (its token ids) with ONE_B's sizes; per-layer lists are derived afresh."""
    spec = tiny_config.to_dict()
    spec["text_config"].update(ONE_B["text"])
    spec["text_config"].pop("layer_types", None)
    spec["vision_config"].update(ONE_B["vision"])
    return type(tiny_config).from_dict(spec)


def _parameters(model_dir: Path) -> int:
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def build_models(work: Path, sizes: list[str], device: str) -> dict[str, tuple[Path, int]]:
    """Each size's checkpoint folder and parameter count."""
    import torch
    from transformers import AutoConfig, AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from vthinker_plugins.testing.tiny_model import build_tiny_model

    tiny = build_tiny_model(work / "tiny")
    paths = {"tiny": tiny}
    if "1b" in sizes:
        config = one_b_config(AutoConfig.from_pretrained(tiny))
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
        model.generation_config = GenerationConfig.from_pretrained(tiny)  # eos/pad ids, the per-step token cap
        out = work / "1b"
        model.save_pretrained(out)
        processor = AutoProcessor.from_pretrained(tiny)
        processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": ONE_B["max_pixels"]}
        processor.save_pretrained(out)
        del model
        paths["1b"] = out
    return {size: (path, _parameters(path)) for size, path in paths.items()}


def _images(n: int, size: int) -> list[Any]:
    from PIL import Image, ImageDraw

    images = []
    for i in range(n):
        image = Image.new("RGB", (size, size), "white")
        ImageDraw.Draw(image).rectangle((10 + i % 20, 10, size - 20, size - 20), outline="black", width=3)
        images.append(image)
    return images


def _peak_memory_gb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def hf_loop(model_dir: Path, device: str, n_samples: int, image_size: int, sandbox: Any) -> dict[str, Any]:
    """The HF backend's interactive loop in bf16, its generation scripted."""
    import torch

    from vthinker_plugins.backends import make_backend
    from vthinker_plugins.loop import InteractionLoop, LoopConfig
    from vthinker_plugins.sample import Sample

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    backend = make_backend(f"scripted:{model_dir}", device=device, dtype="bfloat16", script={"*": ROUNDS},
                           max_batch_size=min(n_samples, 16))
    samples = [Sample(id=f"s{i}", question="How many sides does the shape have?", images=[im], answer="4")
               for i, im in enumerate(_images(n_samples, image_size))]
    loop = InteractionLoop(backend, sandbox, LoopConfig(max_rounds=3, max_new_tokens=256))
    loop.run(samples[:1])  # warm-up: kernels, the sandbox pool
    start = time.perf_counter()
    trajectories = loop.run(samples)
    wall = time.perf_counter() - start
    errors = [t.error for t in trajectories if t.error]
    tokens = sum(len(r.gen_token_ids or []) for t in trajectories for r in t.rounds)
    gen_s = sum(r.gen_s for t in trajectories for r in t.rounds)
    figures = {
        "samples": n_samples, "wall_s": wall, "samples_per_s": n_samples / wall,
        "rounds_per_sample": sum(len(t.rounds) for t in trajectories) / n_samples,
        "tool_calls": sum(t.n_tool_calls for t in trajectories),
        "tool_errors": sum(t.n_tool_errors for t in trajectories),
        "tool_images": sum(len(t.tool_images) for t in trajectories),
        "generated_tokens": tokens, "tokens_per_s": tokens / wall,
        "answers_right": sum(t.answer == "4" for t in trajectories), "errors": errors[:3],
        "gen_s_sum": gen_s, "peak_memory_gb": _peak_memory_gb(device),
    }
    backend.close()
    return figures


def grpo_steps(model_dir: Path, device: str, steps: int, rollouts: int, generations: int, image_size: int,
               work: Path, sandbox: Any) -> dict[str, Any]:
    """GRPO steps in bf16 with the V-Thinker trainer, rollouts scripted to draw twice and answer."""
    import datasets
    import torch
    from transformers import AutoProcessor, TrainerCallback

    from vthinker_plugins.testing.scripted import scripted_logits_processors
    from vthinker_plugins.trl import VThinkerGRPOConfig, VThinkerGRPOTrainer, load_rl_dataset

    bench = _bench_module()
    n_prompts = max(1, rollouts // generations)
    features = datasets.Features({"question": datasets.Value("string"), "image": datasets.Image(),
                                  "answer": datasets.Value("string")})
    data = work / f"rl-{model_dir.name}.parquet"
    datasets.Dataset.from_dict(
        {"question": [f"How many sides? ({i})" for i in range(n_prompts * steps)],
         "image": _images(n_prompts * steps, image_size), "answer": ["4"] * (n_prompts * steps)},
        features=features,
    ).to_parquet(str(data))
    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    timed = bench.TimedSandbox(sandbox)
    args = VThinkerGRPOConfig(
        output_dir=str(work / f"grpo-{model_dir.name}"), use_cpu=device == "cpu", bf16=True,
        per_device_train_batch_size=rollouts, num_generations=generations, max_completion_length=1024,
        max_steps=steps, learning_rate=1e-6, beta=0.01, report_to="none", save_strategy="no", logging_steps=1,
        max_rounds=3, disable_tqdm=True, shuffle_dataset=False,
    )
    step_times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.start)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer = VThinkerGRPOTrainer(
        str(model_dir), args=args, train_dataset=load_rl_dataset(data), processing_class=processor,
        # Even rollouts answer right, odd ones wrong: the rewards differ, so the gradient is not zero.
        sandbox=timed, rollout_logits_processors=scripted_logits_processors(
            processor, {f"rollout{i}": ROUNDS if i % 2 == 0 else WRONG for i in range(rollouts)}),
        callbacks=[StepTimer()],
    )
    gen_intervals: list[tuple[float, float]] = []
    generate = trainer.backend.generator

    def timed_generate(jobs):
        start = time.perf_counter()
        try:
            return generate(jobs)
        finally:
            gen_intervals.append((start, time.perf_counter()))

    trainer.backend.generator = timed_generate
    result = trainer.train()
    calls = timed.calls
    tool_union = bench._union([(a, b) for a, b, _ in calls])
    ideal = sum(w for _, _, w in calls) / sandbox.config.n_workers
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    figures = {
        "steps": steps, "rollouts_per_step": rollouts, "s_per_step": step_times,
        "mean_s_per_step": sum(step_times) / len(step_times) if step_times else math.nan,
        "training_loss": result.training_loss, "tool_cells": len(calls),
        "tool_phase_s": bench._length(tool_union), "tool_phase_ideal_s": ideal,
        "tool_phase_ratio": bench._length(tool_union) / ideal if ideal else math.nan,
        "tool_wait_share": bench._minus(tool_union, bench._union(gen_intervals)) / sum(step_times)
        if step_times else math.nan,
        "calls_per_rollout": [entry.get("tools/calls_per_rollout") for entry in logs],
        "grad_norm": [entry.get("grad_norm") for entry in logs],
        "peak_memory_gb": _peak_memory_gb(device),
    }
    del trainer
    if device == "cuda":
        torch.cuda.empty_cache()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run: tiny model only, two steps, on the CPU")
    parser.add_argument("--out", default="gpu_check.json", help="JSON file for the figures")
    parser.add_argument("--sizes", default=None, help="comma-separated: tiny,1b (default: both; --cpu: tiny)")
    opts = parser.parse_args(argv)

    import torch

    from sandbox import Sandbox, SandboxConfig

    device = "cpu" if opts.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --cpu for the dry run)")
    sizes = (opts.sizes or ("tiny" if opts.cpu else "tiny,1b")).split(",")
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import transformers
    import trl

    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "dry_run": opts.cpu, "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__, "python": platform.python_version(), "models": {},
    }

    def save() -> None:
        out.write_text(json.dumps(report, indent=2, default=str))

    with tempfile.TemporaryDirectory(prefix="vthinker-gpu-check-") as tmp:  # the checkpoints: removed after
        work = Path(tmp)
        start = time.perf_counter()
        paths = build_models(work, sizes, device)
        report["build_s"] = time.perf_counter() - start
        save()
        workers = min(8, os.cpu_count() or 2)
        with Sandbox(SandboxConfig(wall_time_s=20, workers=workers)) as sandbox:
            sandbox.run("print('warm')")
            for size in sizes:
                plan = {"tiny": (2, 2, 2, 112) if opts.cpu else (32, 16, 8, 112), "1b": (16, 16, 8, 448)}[size]
                n_samples, rollouts, generations, image_size = plan
                entry = report["models"].setdefault(size, {"parameters": paths[size][1]})
                print(f"[gpu_check] {size}: HF backend loop, {n_samples} samples", flush=True)
                entry["hf_loop"] = hf_loop(paths[size][0], device, n_samples, image_size, sandbox)
                save()
                print(f"[gpu_check] {size}: GRPO, {rollouts} rollouts per step", flush=True)
                entry["grpo"] = grpo_steps(paths[size][0], device, 2, rollouts, generations, image_size, work, sandbox)
                save()
    report["total_s"] = time.perf_counter() - start
    save()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
