"""Batched transformers rollouts: a row that stops at </code> early must stay a "stop", even when
transformers right-fills it with a pad token that is also an eos id (as in Qwen checkpoints)."""

from __future__ import annotations

from PIL import Image
from transformers import AutoProcessor, GenerationConfig, Qwen2_5_VLForConditionalGeneration

from vthinker_plugins.backend import GenerationRequest
from vthinker_plugins.generation.transformers_generator import TransformersGenerator
from vthinker_plugins.sample import Sample
from vthinker_plugins.testing.scripted import ScriptedLogitsProcessor
from vthinker_plugins.trl.rollout import PolicyBackend

TEXTS = ["ab<code>\nprint(1)\n</code>", "a much longer line of text here<code>\nprint(2)\n</code>"]


def test_early_stopped_row_is_not_reported_as_eos(tiny_model_dir) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    tok = processor.tokenizer
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    eos_ids = [im_end, eot]  # Qwen2.5-VL-Instruct: the pad token <|endoftext|> is an eos id too
    config = GenerationConfig(max_new_tokens=60, do_sample=True, pad_token_id=eot, eos_token_id=eos_ids,
                              temperature=1.0, top_p=1.0)

    def forced(requests, prompt_length):
        scripts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
        return [ScriptedLogitsProcessor(scripts, prompt_length, im_end)]

    generator = TransformersGenerator(lambda: model, processor, config, logits_processors=forced)
    backend = PolicyBackend(processor, generator, eos_token_ids=eos_ids)
    image = Image.new("RGB", (56, 56), "white")
    requests = [
        GenerationRequest(key=f"s{i}#0", system="sys", user="<image>\nq", assistant_prefix="", images=[image],
                          max_new_tokens=60, temperature=1.0, sample=Sample(id=f"s{i}", question="q", images=[image]))
        for i in range(2)
    ]
    outputs = backend.generate(requests)
    assert [o.text for o in outputs] == TEXTS
    assert [o.finish_reason for o in outputs] == ["stop", "stop"]
    assert all(eot not in o.token_ids for o in outputs)  # no pad/eos token to train on
