"""The seam with transformers' private API: restoring a Trainer checkpoint's weights under their own names.

Written against transformers 5.6.0 (LlamaFactory's environment) and 5.18.0 (TRL's); the version
test in ``tests/core/test_transformers_compat.py`` fails on any other. Trainer's resume and
``load_best_model_at_end`` load a checkpoint's original-format keys verbatim, leaving renamed weights
at their starting values; :class:`CheckpointWeightsMixin` maps them back. Design notes: docs/seams.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vthinker_plugins.seam_versions import check_tested_versions

logger = logging.getLogger(__name__)

#: transformers versions this module was written and tested against.
TESTED_TRANSFORMERS_VERSIONS = ("5.6.0", "5.18.0")

# transformers.utils.{SAFE_,}WEIGHTS_{,INDEX_}NAME, spelled out so this module imports without transformers.
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"


class CheckpointWeightsError(RuntimeError):
    """A checkpoint's weights do not match the model they are loaded into."""


def check_transformers_version(version: str | None = None) -> None:
    """Raise with a clear message when transformers is not a version this seam was written against."""
    check_tested_versions("transformers_compat", {"transformers": TESTED_TRANSFORMERS_VERSIONS},
                          {"transformers": version},
                          "Trainer._load_from_checkpoint, Trainer._load_best_model and "
                          "core_model_loading.revert_weight_conversion")


def saved_to_model_names(model: Any) -> dict[str, str]:
    """``{name in a save_pretrained checkpoint: name in model.state_dict()}`` for every weight of ``model``.

    Runs the renaming ``save_pretrained`` applies (``revert_weight_conversion``) on meta tensors and
    matches its output to the input by identity, so the inverse is exact for this model instance
    (including a mapping attached by ``from_pretrained``). Weights that save_pretrained converts
    (merges, splits) rather than renames cannot be inverted here and raise.
    """
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    placeholders = {
        name: torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
        for name, tensor in model.state_dict().items()
    }
    owner = {id(tensor): name for name, tensor in placeholders.items()}
    mapping: dict[str, str] = {}
    for saved, tensor in revert_weight_conversion(model, dict(placeholders)).items():
        name = owner.get(id(tensor))
        if name is None:
            raise CheckpointWeightsError(
                f"{type(model).__name__}: save_pretrained converts {saved!r} (not a plain renaming); "
                "loading such checkpoints on resume is not supported"
            )
        mapping[saved] = name
    return mapping


def weight_files(folder: str | Path) -> list[Path] | None:
    """The full-weight files of a checkpoint folder (one file or an index's shards), or ``None``."""
    folder = Path(folder)
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values()))
            return [folder / shard for shard in shards]
    return None


def _read(path: Path) -> Mapping[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def _shared_names(model: Any) -> Iterator[set[str]]:
    """Groups of state-dict names that are one tensor (tied weights: saved once)."""
    groups: dict[tuple[Any, int], set[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor.device.type == "meta":
            continue
        groups.setdefault((tensor.device, tensor.untyped_storage().data_ptr()), set()).add(name)
    return iter(groups.values())


def load_checkpoint_weights(model: Any, folder: str | Path) -> list[str]:
    """Load a ``save_pretrained`` checkpoint folder's full weights into ``model`` in place; returns the
    model names loaded. Raises :class:`CheckpointWeightsError` naming the checkpoint when a model
    weight is left unset or a checkpoint weight has no place in the model."""
    files = weight_files(folder)
    if files is None:
        raise CheckpointWeightsError(f"{folder}: no {SAFE_WEIGHTS_NAME}, {WEIGHTS_NAME} or index of shards")
    to_model = saved_to_model_names(model)
    expected = set(model.state_dict())
    loaded: set[str] = set()
    unexpected: list[str] = []
    for path in files:
        state = {to_model.get(key, key): tensor for key, tensor in _read(path).items()}
        unexpected += [key for key in state if key not in expected]
        # Non-strict: keys that are neither model weights nor renamings are reported below, not by torch.
        model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
        loaded.update(k for k in state if k in expected)
        del state
    for group in _shared_names(model):
        if group & loaded:
            loaded |= group
    missing = sorted(expected - loaded)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} model weight(s) not in the checkpoint (e.g. {missing[:3]})")
        if unexpected:
            extra = sorted(unexpected)[:3]
            parts.append(f"{len(unexpected)} checkpoint weight(s) the model does not have (e.g. {extra})")
        raise CheckpointWeightsError(
            f"{folder}: the checkpoint does not match {type(model).__name__}: {'; '.join(parts)}. "
            "Refusing to continue with part of the model at its starting weights."
        )
    logger.info("restored %d weights from %s", len(loaded), folder)
    return sorted(loaded)


class CheckpointWeightsMixin:
    """``transformers.Trainer`` overrides: resume and ``load_best_model_at_end`` restore every weight.

    Put it before the Trainer class in the bases. Only the plain path with full-weight files is
    taken over; DeepSpeed (its own ``global_step*`` states), FSDP, SageMaker and PEFT adapters
    keep transformers' own loading.
    """

    def _takes_over(self, folder: str | Path, model: Any) -> bool:
        from transformers.trainer import _is_peft_model, is_sagemaker_mp_enabled

        if self.is_deepspeed_enabled or self.is_fsdp_enabled or is_sagemaker_mp_enabled():  # type: ignore[attr-defined]
            return False
        return not _is_peft_model(model) and weight_files(folder) is not None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        target = self.model if model is None else model  # type: ignore[attr-defined]
        if not self._takes_over(resume_from_checkpoint, target):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
        logger.info("loading model weights from %s", resume_from_checkpoint)
        load_checkpoint_weights(target, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint  # type: ignore[attr-defined]
        if best is None or not self._takes_over(best, self.model):  # type: ignore[attr-defined]
            return super()._load_best_model()  # type: ignore[misc]
        logger.info("loading best model from %s (score: %s)", best, self.state.best_metric)  # type: ignore[attr-defined]
        load_checkpoint_weights(self.model, best)  # type: ignore[attr-defined]
