"""What re-encoding the whole prompt every round costs the transformers backend.

The HF backend takes the simple, always-correct path: each generation round
re-encodes system + user + the assistant prefix (all images included). A KV-cache
carried across rounds would skip that prefill. This script measures, per round of
a scripted multi-round trajectory, the prefill time (one forward pass over the
prompt, images through the vision tower) against the whole generation step, and
prints the share of generation time a cache would save.

    python benchmarks/hf_reencode.py                      # tiny random Qwen2.5-VL (built on the fly)
    python benchmarks/hf_reencode.py --model /models/V-Thinker-7B --device cuda --rounds 4 --tokens 256
"""

from __future__ import annotations

import argparse
import tempfile
import time

from PIL import Image, ImageDraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: build the tiny model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=4, help="generation rounds (rounds-1 tool images)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from vthinker_plugins.backends.hf import HFBackend
    from vthinker_plugins.backends.scripted import Script
    from vthinker_plugins.loop import GenerationRequest
    from vthinker_plugins.protocol import DEFAULT_PROMPTS, observation_text

    model = args.model
    if model is None:
        from vthinker_plugins.tiny_model import build_tiny_model

        model = str(build_tiny_model(tempfile.mkdtemp(prefix="tiny-qwen-")))
    backend = HFBackend(model, device=args.device)
    filler = " ".join(["the auxiliary line meets the circle"] * 200)
    n_ids = len(backend.tokenizer.encode(filler, add_special_tokens=False))
    filler_ids = backend.tokenizer.encode(filler, add_special_tokens=False)[: args.tokens]
    round_text = backend.tokenizer.decode(filler_ids) if n_ids >= args.tokens else filler
    backend.script = Script({"*": [round_text] * args.rounds})

    image = Image.new("RGB", (448, 448), "white")
    ImageDraw.Draw(image).line((0, 0, 447, 447), fill="black", width=3)
    prefix, images = "", [image]
    print(f"model={model} device={args.device} tokens/round={args.tokens}")
    print(f"{'round':>5} {'prompt tok':>10} {'prefill s':>10} {'step s':>8} {'prefill share':>13}")
    total_step = total_prefill = 0.0
    for r in range(args.rounds):
        request = GenerationRequest(key="bench#0", system=DEFAULT_PROMPTS.system,
                                    user=DEFAULT_PROMPTS.user_prompt("Where do the lines meet?", 1),
                                    assistant_prefix=prefix, images=list(images), max_new_tokens=args.tokens, stop=())
        inputs = backend.processor(text=[backend.prompt_text(request)],
                                   images=[backend.prepare_image(i) for i in images], return_tensors="pt")
        inputs = inputs.to(backend.device)
        prefill, step = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.inference_mode():
                backend.model(**inputs)
            prefill.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = backend.generate([request])[0]
            step.append(time.perf_counter() - t0)
        p, s = min(prefill), min(step)
        if r > 0:  # round 0 must prefill anyway; later rounds are what a cache would save
            total_prefill += p
        total_step += s
        print(f"{r:>5} {inputs['input_ids'].shape[1]:>10} {p:>10.4f} {s:>8.4f} {p / s:>12.1%}")
        prefix += out.text + observation_text("<image>")
        images.append(image.rotate(90))
    print(f"re-encoding cost: {total_prefill:.3f}s of {total_step:.3f}s generation "
          f"= {total_prefill / total_step:.1%} (the most a cross-round KV cache could save)")


if __name__ == "__main__":
    main()
