"""What re-running the prefill every round costs the transformers backend.

The HF backend is token-level (prompt ids, then per round the generated ids and the observation's
ids, never re-tokenised text), but it keeps no KV cache across rounds: each generation round runs
the prefill over the whole sequence again (all images through the vision tower, then the text). A
cache carried across rounds would skip that. This script drives a scripted multi-round trajectory
through the backend's real token-level path (one trajectory key per repeat, the observation with its
new image appended each round), captures the exact inputs each round generates from, and times one
forward pass over them (the prefill) against the whole generation step. It prints the share of
generation time a cross-round cache would save.

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

    from vthinker_plugins.backend import GenerationRequest
    from vthinker_plugins.backends import make_backend
    from vthinker_plugins.protocol import DEFAULT_PROMPTS, observation_text
    from vthinker_plugins.testing.scripted import Script

    model = args.model
    if model is None:
        from vthinker_plugins.testing.tiny_model import build_tiny_model

        model = str(build_tiny_model(tempfile.mkdtemp(prefix="tiny-qwen-")))
    backend = make_backend(f"scripted:{model}", script={}, device=args.device)
    filler = " ".join(["the auxiliary line meets the circle"] * 200)
    n_ids = len(backend.tokenizer.encode(filler, add_special_tokens=False))
    filler_ids = backend.tokenizer.encode(filler, add_special_tokens=False)[: args.tokens]
    round_text = backend.tokenizer.decode(filler_ids) if n_ids >= args.tokens else filler
    backend.script = Script({"*": [round_text] * args.rounds})

    image = Image.new("RGB", (448, 448), "white")
    ImageDraw.Draw(image).line((0, 0, 447, 447), fill="black", width=3)
    captured: list[dict] = []
    real_generate = backend.model.generate

    def capture(**kwargs):  # the exact tensors the backend generates from this round
        captured.append({k: v for k, v in kwargs.items() if k in ("input_ids", "attention_mask", "pixel_values",
                                                                   "image_grid_thw", "mm_token_type_ids")})
        return real_generate(**kwargs)

    backend.model.generate = capture
    prefill = [[] for _ in range(args.rounds)]
    step = [[] for _ in range(args.rounds)]
    lengths = [0] * args.rounds
    for rep in range(args.repeats):
        prefix, images, expected = "", [image], []
        for r in range(args.rounds):
            request = GenerationRequest(key=f"bench#{rep}", system=DEFAULT_PROMPTS.system,
                                        user=DEFAULT_PROMPTS.user_prompt("Where do the lines meet?", 1),
                                        assistant_prefix=prefix, images=list(images), max_new_tokens=args.tokens,
                                        stop=())
            captured.clear()
            t0 = time.perf_counter()
            out = backend.generate([request])[0]
            step[r].append(time.perf_counter() - t0)
            inputs = captured[0]
            ids = inputs["input_ids"][0].tolist()
            # Token-level, not re-encoded: this round continues the last one's ids exactly.
            assert r == 0 or ids == expected, f"round {r}: the backend re-encoded the trajectory"
            lengths[r] = len(ids)
            t0 = time.perf_counter()
            with torch.inference_mode():
                backend.model(**inputs)
            prefill[r].append(time.perf_counter() - t0)
            observation = observation_text("<image>")
            new_image = image.rotate(90 * (r + 1))
            obs_ids = backend.observation_token_ids(observation, [new_image])  # as the interaction loop does
            expected = ids + out.token_ids + obs_ids
            prefix += out.text + observation
            images.append(new_image)
        backend.release(f"bench#{rep}")

    print(f"model={model} device={args.device} tokens/round={args.tokens}")
    print(f"{'round':>5} {'input tok':>10} {'prefill s':>10} {'step s':>8} {'prefill share':>13}")
    total_step = total_prefill = 0.0
    for r in range(args.rounds):
        p, s = min(prefill[r]), min(step[r])
        if r > 0:  # round 0 must prefill anyway; later rounds are what a cache would save
            total_prefill += p
        total_step += s
        print(f"{r:>5} {lengths[r]:>10} {p:>10.4f} {s:>8.4f} {p / s:>12.1%}")
    print(f"prefill re-run cost: {total_prefill:.3f}s of {total_step:.3f}s generation "
          f"= {total_prefill / total_step:.1%} (the most a cross-round KV cache could save)")

if __name__ == "__main__":
    main()
