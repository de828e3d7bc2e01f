"""The labels LlamaFactory itself produces for a stage-2 sample with the vthinker_qwen2_vl template."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest

from vthinker_plugins.chat import build_prompt
from vthinker_plugins.llamafactory import TEMPLATE_NAME
from vthinker_plugins.llamafactory.template import END_OF_TURN
from vthinker_plugins.protocol import OBS_CLOSE, OBS_OPEN

IGNORE_INDEX = -100
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def encoded(sft_bin, lf_env, lf_data, tiny_model_dir) -> list[dict]:
    proc = subprocess.run(
        [str(sft_bin / "python"), str(HERE / "lf_encode.py"), str(tiny_model_dir), str(lf_data), "v_interaction",
         TEMPLATE_NAME],
        env=lf_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows, proc.stderr[-3000:]
    return rows


def samples(lf_data: Path) -> list[dict]:
    files = sorted((lf_data / "v_interaction").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_every_sample_is_encoded_with_our_template(encoded, lf_data) -> None:
    assert len(encoded) == len(samples(lf_data))
    assert {row["template_class"] for row in encoded} == {"VThinkerTemplate"}


def test_sandbox_output_is_masked_and_model_text_trained(encoded) -> None:
    for row in encoded:
        ids, labels, pieces = row["input_ids"], row["labels"], row["pieces"]
        text = "".join(pieces)
        starts = [0]
        for piece in pieces:
            starts.append(starts[-1] + len(piece))
        assistant_start = text.index("<|im_start|>assistant\n") + len("<|im_start|>assistant\n")
        # The whole observation the loop appends, its surrounding newlines included, is not the model's.
        obs_re = re.compile("\n" + re.escape(OBS_OPEN) + ".*?" + re.escape(OBS_CLOSE) + "\n", re.S)
        obs_spans = [(m.start(), m.end()) for m in obs_re.finditer(text, assistant_start)]
        assert len(obs_spans) == 1
        n_obs = n_trained = 0
        for tok, (lo, hi) in enumerate(itertools.pairwise(starts)):
            in_obs = any(lo < e and hi > s for s, e in obs_spans)
            if hi <= assistant_start:
                assert labels[tok] == IGNORE_INDEX, f"prompt token {pieces[tok]!r} is trained"
            elif in_obs:
                n_obs += 1
                assert labels[tok] == IGNORE_INDEX, f"observation token {pieces[tok]!r} is trained"
            elif lo >= assistant_start:
                n_trained += 1
                assert labels[tok] == ids[tok], f"model token {pieces[tok]!r} is not trained"
        assert n_obs > 4 and n_trained > 20
        trained = "".join(p for p, label in zip(pieces, labels, strict=True) if label != IGNORE_INDEX)
        # The model's own text: the code, the answer and the end of turn are all trained.
        assert "<code>\n```python\n" in trained and "</code>" in trained
        assert re.search(r"<answer>\d+</answer><\|im_end\|>\n$", trained)
        assert "<|image_pad|>" not in trained and OBS_OPEN not in trained and OBS_CLOSE not in trained


def test_prompt_text_equals_the_interaction_loop_rendering(encoded, lf_data, tiny_model_dir) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    for row, sample in zip(encoded, samples(lf_data), strict=True):
        messages = sample["messages"]
        system, user = messages[0]["content"], messages[1]["content"]
        assistant_text = "".join(m["content"] for m in messages[2:])
        expected = build_prompt(processor, system, user, assistant_text) + END_OF_TURN
        rendered = re.sub(r"(<\|image_pad\|>)+", "<|image_pad|>", "".join(row["pieces"]))
        assert rendered == expected
