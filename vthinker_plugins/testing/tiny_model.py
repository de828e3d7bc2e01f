"""Build a tiny, randomly initialised Qwen2.5-VL checkpoint offline.

No machine of this project reaches the hub, so tests run the real frameworks
(LlamaFactory, TRL, lmms-eval, VLMEvalKit) on this model. It is saved like a
hub checkpoint (config, weights, tokenizer, processor, chat template) so every
framework loads it with ``from_pretrained(path)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from vthinker_plugins.model_family import (
    CHATML_SYSTEM,
    END_OF_TURN,
    ENDOFTEXT,
    IM_END,
    IM_START,
    IMAGE_MARKUP,
    IMAGE_PAD,
    SPECIAL_TOKENS,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
)

# Qwen2.5-VL's ChatML template, reduced to what the protocol needs: string or
# list content, image parts rendered as vision tokens, a default system prompt.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    + CHATML_SYSTEM.replace("{content}", "You are a helpful assistant.")
    + "{% endif %}"
    + IM_START + "{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}" + IMAGE_MARKUP
    + "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    + END_OF_TURN
    + "{% endfor %}"
    "{% if add_generation_prompt %}" + IM_START + "assistant\n{% endif %}"
)

_CORPUS_SNIPPETS = (
    "<think>Let me draw an auxiliary line on the image.</think>",
    "<code>\n```python\nfrom PIL import Image, ImageDraw\nimg = Image.open(image_path)\n"
    "draw = ImageDraw.Draw(img)\ndraw.line((0, 0, 100, 100), fill='red', width=3)\n"
    "img.save(processed_path)\nprint(processed_path)\n```\n</code>",
    "<sandbox_output><image></sandbox_output>",
    "<answer>42</answer> <answer>A</answer> <answer>B</answer> <answer>C</answer>",
    "How many triangles are in the figure? What is the length of segment AB?",
    "The path of the input image is stored in the variable `image_path`.",
    "import numpy as np\nimport cv2\nimport math\nimport matplotlib.pyplot as plt",
    "Choices: (A) 3 (B) 4 (C) 5 (D) 6 (E) 7. The answer is 5 degrees, 12 cm, x = 3/4.",
    "Mark the points P1, P2 with pixel coordinates (280, 80) and draw the circle.",
    "You are a visual reasoning assistant that thinks with images. system user assistant",
)


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [s for s in _CORPUS_SNIPPETS for _ in range(20)]
    tok.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    return vocab, merges


def build_tiny_model(output_dir: str | Path, *, seed: int = 0, vocab_size: int = 400) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint to ``output_dir`` and return the path.

    Deterministic for a given seed. ~200K parameters; images are limited to
    64 merged patches so CPU tests stay fast.
    """
    import torch
    from tokenizers import AddedToken
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = _train_tokenizer(vocab_size)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]}
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    video_processor = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab_total = ((len(tokenizer) + 63) // 64) * 64
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_total,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "rope_theta": 1e6,
            "bos_token_id": ids[ENDOFTEXT],
            "pad_token_id": ids[ENDOFTEXT],
            "eos_token_id": ids[IM_END],
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [0],
            "in_channels": 3,
        },
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        bos_token_id=ids[ENDOFTEXT],
        pad_token_id=ids[ENDOFTEXT],
        eos_token_id=ids[IM_END],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids[IM_END]
    model.generation_config.pad_token_id = ids[ENDOFTEXT]
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def add_arguments(parser) -> None:
    parser.add_argument("output_dir", help="folder to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    path = build_tiny_model(args.output_dir, seed=args.seed)
    print(f"tiny Qwen2.5-VL written to {path}")
    return 0
