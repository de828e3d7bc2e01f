"""How well one GRPO step packs its sandbox work onto the pool.

Runs one real training step of :class:`~vthinker_plugins.trl.trainer.VThinkerGRPOTrainer` on
a tiny Qwen2.5-VL (CPU) with N rollouts whose generation is scripted to write code blocks
that draw on the image and compute for a while, and measures:

- **tool phase**: wall time during which at least one sandbox cell is in flight, against the
  ideal ``sum of the cells' own run times / pool size`` measured in the same run
  (goal: ratio <= 1.3);
- **tool wait share**: the part of the step's wall time in which tools are running and the
  model is not generating (what the step pays for the tool beyond overlap).

    python benchmarks/grpo_tool_phase.py --rollouts 16 --workers 2 --rounds 2 --cell-seconds 0.3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def _minus(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Length of the union ``a`` not covered by the union ``b``."""
    total = 0.0
    for start, end in a:
        covered = sum(max(0.0, min(end, e) - max(start, s)) for s, e in b)
        total += (end - start) - covered
    return total


class TimedSandbox:
    """Wraps a sandbox and records when each cell ran (start, end, the cell's own wall time)."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.calls: list[tuple[float, float, float]] = []
        self.lock = threading.Lock()

    async def arun(self, code, images=None, **kwargs):
        start = time.perf_counter()
        result = await self.sandbox.arun(code, images, **kwargs)
        with self.lock:
            self.calls.append((start, time.perf_counter(), result.wall_s))
        return result

    def __getattr__(self, name):
        return getattr(self.sandbox, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=16, help="rollouts in the step (num_generations x prompts)")
    parser.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="sandbox pool size")
    parser.add_argument("--rounds", type=int, default=2, help="code blocks per rollout")
    parser.add_argument("--cell-seconds", type=float, default=0.3, help="CPU time each cell burns")
    parser.add_argument("--model", default=None, help="tiny model folder (built if missing)")
    opts = parser.parse_args()

    import datasets
    from PIL import Image, ImageDraw
    from transformers import AutoProcessor

    from sandbox import Sandbox, SandboxConfig
    from vthinker_plugins.testing.scripted import Script, ScriptedLogitsProcessor
    from vthinker_plugins.testing.tiny_model import build_tiny_model
    from vthinker_plugins.trl import VThinkerGRPOConfig, VThinkerGRPOTrainer, load_rl_dataset

    work = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    model_dir = Path(opts.model) if opts.model else work / "tiny"
    if not (model_dir / "config.json").exists():
        build_tiny_model(model_dir)
    n_prompts = max(1, opts.rollouts // opts.generations)
    images = []
    for i in range(n_prompts):
        im = Image.new("RGB", (112, 112), "white")
        ImageDraw.Draw(im).rectangle((10 + i, 10, 90, 90), outline="black", width=2)
        images.append(im)
    features = datasets.Features({"question": datasets.Value("string"), "image": datasets.Image(),
                                  "answer": datasets.Value("string")})
    data = work / "train.parquet"
    datasets.Dataset.from_dict(
        {"question": [f"How many sides? ({i})" for i in range(n_prompts)], "image": images,
         "answer": ["4"] * n_prompts},
        features=features,
    ).to_parquet(str(data))

    cell = (
        "<code>\n```python\nimport time\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path)\n"
        f"t = time.perf_counter()\nwhile time.perf_counter() - t < {opts.cell_seconds}:\n    pass\n"
        "ImageDraw.Draw(img).line((0, 0, 80, 80), fill='red', width=2)\nimg.save(processed_path)\n"
        "print(processed_path)\n```\n</code>"
    )
    rounds = [f"<think>Step {r}.\n{cell}" if r == 0 else f"Step {r}.\n{cell}" for r in range(opts.rounds)]
    rounds.append("Done.</think><answer>4</answer>")
    script = Script({"*": rounds})
    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")

    def force(requests, prompt_length):
        targets = [tok.encode(script.text_for(r.sample.id, r.assistant_prefix) or "", add_special_tokens=False)
                   for r in requests]
        return [ScriptedLogitsProcessor(targets, prompt_length, eos)]

    sandbox = TimedSandbox(Sandbox(SandboxConfig(wall_time_s=30, workers=opts.workers)))
    sandbox.sandbox.run("print('warm')")  # start the pool outside the measurement
    args = VThinkerGRPOConfig(
        output_dir=str(work / "out"), use_cpu=True, bf16=False, per_device_train_batch_size=opts.rollouts,
        num_generations=opts.generations, max_completion_length=2048, max_steps=1, learning_rate=1e-4,
        beta=0.0, report_to="none", save_strategy="no", logging_steps=1, max_rounds=opts.rounds,
        disable_tqdm=True,
    )
    trainer = VThinkerGRPOTrainer(
        str(model_dir), args=args, train_dataset=load_rl_dataset(data), processing_class=processor,
        sandbox=sandbox, rollout_logits_processors=force,
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
    start = time.perf_counter()
    trainer.train()
    step_s = time.perf_counter() - start

    calls = sandbox.calls
    tool_union = _union([(a, b) for a, b, _ in calls])
    tool_phase = _length(tool_union)
    ideal = sum(w for _, _, w in calls) / opts.workers
    waiting = _minus(tool_union, _union(gen_intervals))
    stats = trainer.last_rollout_stats
    print(f"rollouts={opts.rollouts} workers={opts.workers} cells={len(calls)} (expected "
          f"{opts.rollouts * opts.rounds}) cell_seconds={opts.cell_seconds}")
    print(f"step wall            {step_s:8.3f} s (rollout phase {stats['rollout_s']:.3f} s)")
    print(f"sum of cell times    {sum(w for _, _, w in calls):8.3f} s")
    print(f"ideal tool phase     {ideal:8.3f} s (sum / pool size: the baseline)")
    print(f"tool phase wall      {tool_phase:8.3f} s")
    print(f"ratio                {tool_phase / ideal if ideal else float('nan'):8.3f} (goal <= 1.3)")
    print(f"tool wait share      {waiting / step_s:8.3f} of the step (tools running, model idle)")


if __name__ == "__main__":
    main()
