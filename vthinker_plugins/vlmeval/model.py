"""The V-Thinker model for VLMEvalKit: each prompt runs through the project's interaction loop.

``V-Thinker-7B`` in ``supported_VLM`` is the released checkpoint; :class:`VThinkerChat` takes any
checkpoint / backend. ``generate_inner`` returns the whole assistant turn and ``extra_records``; the
trajectories go to ``image_dir/<model name>/<dataset>/``. Details: docs/harnesses.md.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

from vlmeval.smp import get_logger
from vlmeval.smp.file import INFER_FAIL_MSG
from vlmeval.vlm.base import BaseModel

from vthinker_plugins.data.sources import to_image
from vthinker_plugins.factory import RunSettings
from vthinker_plugins.runs.files import safe_name
from vthinker_plugins.runs.trajectory import generation_identity, save_trajectory
from vthinker_plugins.sample import Sample
from vthinker_plugins.vlmeval.compat import add_models
from vthinker_plugins.vlmeval.datasets import message_fingerprint, sample_info_for

logger = get_logger(__name__)

V_THINKER_7B = "We-Math/V-Thinker"
IMAGE_DIR_ENV = "VTHINKER_VLMEVAL_IMAGE_DIR"


class VThinkerChat(BaseModel):
    """V-Thinker (or any model behind a backend spec) answering with the code loop.

    Args:
        model_path: backend spec: checkpoint folder / hub id, ``vllm:PATH``, ``openai:MODEL``, ``reference``.
        max_rounds: code rounds when the dataset does not set them (V-Thinker eval: 5;
            the VTBench perception/instruction rows carry 1).
        max_new_tokens, max_tool_images, temperature, top_p, persistent_state: loop limits.
        system_prompt_file, user_prompt_file: prompts from files (e.g. the official ``data/prompt.txt``).
        image_dir: where trajectories and generated images are written (one folder per model).
        name: the model's name in VLMEvalKit (its folder under ``image_dir``); default: ``model_path``.
        **backend_options: passed to the backend (``device``, ``max_pixels``, ``base_url`` ...).
    """

    INTERLEAVE = True
    is_api = False

    def __init__(
        self,
        model_path: str = V_THINKER_7B,
        max_rounds: int = 5,
        max_new_tokens: int = 16384,
        max_tool_images: int = 10,
        temperature: float = 0.0,
        top_p: float = 1.0,
        persistent_state: bool = False,
        system_prompt_file: str | None = None,
        user_prompt_file: str | None = None,
        image_dir: str | None = None,
        name: str | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__()
        self.model_path = str(model_path)
        self.name = str(name or model_path)
        self.max_rounds = int(max_rounds)
        self.settings = RunSettings(self.model_path, backend_options, max_rounds=self.max_rounds,
                                    max_new_tokens=int(max_new_tokens), max_tool_images=int(max_tool_images),
                                    temperature=float(temperature), top_p=float(top_p),
                                    persistent_state=bool(persistent_state), system_prompt_file=system_prompt_file,
                                    user_prompt_file=user_prompt_file)
        self.backend = self.settings.backend()
        self.config = self.settings.loop_config()
        self.loop = self.settings.loop(self.backend)
        root = image_dir or os.environ.get(IMAGE_DIR_ENV) or Path("outputs") / "vthinker_images"
        self.image_dir = Path(root).expanduser().resolve()

    def _sample(self, message: list[dict[str, Any]], dataset: str | None) -> Sample:
        images = [
            to_image(m["value"], where=f"{dataset} image").convert("RGB") for m in message if m["type"] == "image"
        ]
        question = "\n".join(str(m["value"]) for m in message if m["type"] == "text")
        if not images:
            raise ValueError(f"{dataset}: V-Thinker needs at least one image in the prompt")
        info = sample_info_for(message)
        if info is None:  # a dataset of VLMEvalKit itself: the prompt is all we know
            return Sample(id=message_fingerprint(message)[:16], question=question, images=images,
                          max_rounds=self.max_rounds)
        return Sample(
            id=info["id"],
            question=question,
            images=images,
            answer=info.get("answer"),
            options=info.get("options") or [],
            task=info.get("task") or "generic",
            max_rounds=info.get("max_rounds") or self.max_rounds,
            meta={"index": info.get("index")},
        )

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> dict[str, Any]:
        sample = self._sample(message, dataset)
        trajectory = self.loop.run([sample])[0]
        key = f"{dataset}:{sample.meta.get('index', sample.id)}"
        folder = self.image_dir / safe_name(self.name) / str(dataset) / safe_name(key)
        run = generation_identity(self.settings, self.config, sample.max_rounds)
        record = save_trajectory(trajectory, folder, extra={"key": key, "model": self.name, "run": run})
        extra = {
            "answer": record["answer"],
            "n_rounds": record["n_rounds"],
            "n_tool_calls": record["n_tool_calls"],
            "n_tool_errors": record["n_tool_errors"],
            "stop_reason": record["stop_reason"],
            "generated_images": record["generated_images"],
            "record": record["record"],
        }
        prediction = trajectory.text
        if trajectory.error:
            # VLMEvalKit's failure marker: counted as an inference failure and retried with --reuse.
            logger.warning(f"V-Thinker failed on {dataset} sample {sample.id}: {trajectory.error}")
            prediction = f"{INFER_FAIL_MSG}: {trajectory.error}"
            extra["error"] = trajectory.error
        # A JSON string survives every prediction format (xlsx, tsv, json) unchanged.
        return {"prediction": prediction, "extra_records": json.dumps(extra, ensure_ascii=False)}


def register_models() -> list[str]:
    """Add ``V-Thinker-7B`` to ``supported_VLM`` and ``VThinkerChat`` to ``vlmeval.vlm`` (idempotent)."""
    path = os.environ.get("VTHINKER_MODEL_PATH", V_THINKER_7B)
    add_models({"V-Thinker-7B": partial(VThinkerChat, model_path=path, name="V-Thinker-7B")},
               exported={"VThinkerChat": VThinkerChat})
    return ["V-Thinker-7B"]


def register_model(name: str, spec: str, **options: Any) -> None:
    """Register ``name`` in ``supported_VLM`` as V-Thinker on backend ``spec`` (e.g. a local checkpoint)."""
    add_models({name: partial(VThinkerChat, model_path=spec, name=name, **options)})
