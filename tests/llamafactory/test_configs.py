"""The shipped stage YAMLs carry the paper's recipe and point at files that exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vthinker_plugins.data.perception import DEFAULT_MAX_PIXELS
from vthinker_plugins.data.sharegpt import dataset_info_entry
from vthinker_plugins.llamafactory import TEMPLATE_NAME

CONFIGS = Path(__file__).resolve().parents[2] / "llamafactory_configs"


@pytest.mark.parametrize("stage", [1, 2])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_stage_yaml(stage: int, method: str) -> None:
    cfg = yaml.safe_load((CONFIGS / f"stage{stage}_{method}.yaml").read_text())
    assert cfg["model_name_or_path"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert cfg["finetuning_type"] == method
    assert cfg["freeze_vision_tower"] is True and cfg["freeze_multi_modal_projector"] is True
    assert cfg["image_max_pixels"] == DEFAULT_MAX_PIXELS
    assert cfg["cutoff_len"] == 15000 and cfg["warmup_ratio"] == 0.03 and cfg["weight_decay"] == 0.1
    assert cfg["bf16"] is True
    assert cfg["num_train_epochs"] == (1.0 if stage == 1 else 3.0)
    if method == "full":
        assert cfg["learning_rate"] == 1.0e-5
    assert cfg["template"] == ("qwen2_vl" if stage == 1 else TEMPLATE_NAME)
    assert cfg["dataset"] == ("v_perception" if stage == 1 else "v_interaction")
    ds = json.loads((CONFIGS.parent / cfg["deepspeed"]).read_text())
    assert ds["zero_optimization"]["stage"] == 2


def test_deepspeed_files_and_dataset_info() -> None:
    assert json.loads((CONFIGS / "deepspeed/ds_z3.json").read_text())["zero_optimization"]["stage"] == 3
    info = json.loads((CONFIGS / "dataset_info.json").read_text())
    for name, entry in info.items():
        assert entry == dataset_info_entry(name)
