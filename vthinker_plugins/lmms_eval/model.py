"""The ``vthinker`` lmms-eval model: V-Thinker's code loop inside ``generate_until``.

lmms-eval's own agentic loop drops the conversation history, so the whole interaction (generate ->
run the code in the sandbox -> feed the image back into the same assistant turn -> ...) runs here,
through the project's one :class:`~vthinker_plugins.loop.InteractionLoop`, all requests of a call
together. Usage, model args and design notes: docs/harnesses.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from tqdm import tqdm

from vthinker_plugins.data.sources import to_image
from vthinker_plugins.factory import DEFAULT_MAX_ROUNDS, RunSettings
from vthinker_plugins.lmms_eval import records
from vthinker_plugins.lmms_eval.tasks import KEY_COLUMN, TASK_COLUMN, doc_to_sample
from vthinker_plugins.loop import InteractionLoop, LoopConfig, Trajectory
from vthinker_plugins.runs.trajectory import check_resumable, generation_identity, load_record, save_trajectory
from vthinker_plugins.sample import Sample


def _default_image_dir() -> Path:
    """``<--output_path>/vthinker_images/<timestamp>``: beside lmms-eval's own result files."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--output_path", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    base = Path(known.output_path) if known.output_path else Path.cwd()
    return base / "vthinker_images" / _dt.datetime.now().strftime("%Y%m%d_%H%M%S")


def _backend_spec(pretrained: str, backend: str | None) -> str:
    if not backend or backend in ("hf", "transformers"):
        return pretrained
    if backend in ("vllm", "openai"):
        return pretrained if pretrained.startswith(f"{backend}:") else f"{backend}:{pretrained}"
    raise ValueError(f"backend={backend!r}: choose hf, vllm or openai")


class VThinker(lmms):
    """lmms-eval chat model running the V-Thinker interaction loop (see the module docstring)."""

    is_simple = False

    def __init__(
        self,
        pretrained: str,
        backend: str | None = None,
        max_rounds: int | None = None,
        max_new_tokens: int | None = None,
        max_tool_images: int = 10,
        temperature: float | None = None,
        top_p: float | None = None,
        persistent_state: bool = False,
        system_prompt_file: str | None = None,
        user_prompt_file: str | None = None,
        image_dir: str | None = None,
        resume: bool = True,
        concurrency: int = 64,
        batch_size: int | str | None = None,
        max_batch_size: int | None = None,
        device: str | None = None,
        **backend_options: Any,
    ) -> None:
        super().__init__()
        # Several processes (accelerate launch): each takes its share of docs, on its own GPU.
        local_rank = 0
        try:
            from accelerate import PartialState

            state = PartialState()
            self._rank, self._world_size = state.process_index, state.num_processes
            local_rank = state.local_process_index
        except Exception:  # noqa: BLE001 - single process without accelerate state
            self._rank, self._world_size = 0, 1

        self.spec = _backend_spec(str(pretrained), backend)
        is_local_model = not self.spec.startswith(("openai:", "vllm:")) and self.spec != "reference"
        if device is None and is_local_model and self._world_size > 1:
            device = f"cuda:{local_rank}"
        if device is not None and is_local_model:
            backend_options.setdefault("device", device)
        # Requests per generation step: ``max_batch_size`` (model_args or lmms-eval's --max_batch_size) and
        # ``--batch_size N`` (N > 1); with both, the batch size is capped at max_batch_size.
        batch = int(batch_size) if batch_size is not None and str(batch_size).isdigit() else None
        batch = batch if batch is not None and batch > 1 else None
        if max_batch_size is not None:
            if int(max_batch_size) < 1:
                raise ValueError(f"max_batch_size={max_batch_size!r}: must be a positive integer")
            batch = int(max_batch_size) if batch is None else min(batch, int(max_batch_size))
        if batch is not None and self.spec != "reference":  # the oracle takes no constructor options
            backend_options["max_batch_size"] = batch
        self.settings = RunSettings(self.spec, backend_options, max_tool_images=int(max_tool_images),
                                    persistent_state=bool(persistent_state), concurrency=int(concurrency),
                                    system_prompt_file=system_prompt_file, user_prompt_file=user_prompt_file)
        self.backend = self.settings.backend()
        if batch is not None:
            self.backend.max_batch_size = batch
        self.batch_size_per_gpu = self.backend.max_batch_size
        # Set here, they win over the task's generation_kwargs.
        self.max_rounds = None if max_rounds is None else int(max_rounds)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        self.temperature = None if temperature is None else float(temperature)
        self.top_p = None if top_p is None else float(top_p)
        self.prompts = self.settings.prompts()
        self.resume = bool(resume) and image_dir is not None
        self.image_dir = records.activate(image_dir if image_dir is not None else _default_image_dir())
        logger.info(f"vthinker: backend {self.spec}; trajectories and images under {self.image_dir}")

    # ------------------------------------------------------------------ requests -> samples

    def _sample_for(self, request: Instance) -> tuple[str, Sample, dict[str, Any]]:
        ctx, doc_to_messages, gen_kwargs, doc_id, task, split = request.args
        gen_kwargs = dict(gen_kwargs or {})
        doc = self.task_dict[task][split][doc_id]
        if isinstance(doc, dict) and doc.get(TASK_COLUMN):
            # One of our tasks: the exact sample (id, answer, per-task round limit, metadata).
            sample = doc_to_sample(doc)
            key = str(doc[KEY_COLUMN])
        else:
            sample = self._generic_sample(doc_to_messages(doc), ctx, f"{task}/{split}/{doc_id}")
            key = f"{task}:{split}:{doc_id}"
        rounds = self.max_rounds if self.max_rounds is not None else gen_kwargs.get("max_rounds")
        if rounds is not None:
            sample.max_rounds = int(rounds)
        elif sample.max_rounds is None:
            sample.max_rounds = DEFAULT_MAX_ROUNDS
        return key, sample, gen_kwargs

    @staticmethod
    def _generic_sample(messages: list[dict[str, Any]], ctx: str, sample_id: str) -> Sample:
        """Any other lmms-eval image task: the user turn's images and text become the sample."""
        images: list[Image.Image] = []
        texts: list[str] = []
        for message in messages or []:
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for part in content or []:
                kind = part.get("type")
                if kind == "image":
                    value = part.get("url", part.get("image"))
                    images.append(to_image(value, where=f"{sample_id}: image").convert("RGB"))
                elif kind == "text":
                    texts.append(part.get("text", ""))
        question = "\n".join(t for t in texts if t) or (ctx if isinstance(ctx, str) else "")
        if not images:
            raise ValueError(f"{sample_id}: the vthinker model needs at least one input image")
        return Sample(id=sample_id, question=question, images=images)

    def _loop_config(self, gen_kwargs: dict[str, Any]) -> LoopConfig:
        def pick(own: Any, key: str) -> Any:
            return own if own is not None else gen_kwargs.get(key)

        return self.settings.with_defaults(max_new_tokens=pick(self.max_new_tokens, "max_new_tokens"),
                                           temperature=pick(self.temperature, "temperature"),
                                           top_p=pick(self.top_p, "top_p")).loop_config()

    # ------------------------------------------------------------------ lmms API

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """Run every request through the interaction loop; the response is the whole assistant turn."""
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, str, Sample]]] = defaultdict(list)
        configs: dict[tuple, LoopConfig] = {}
        pbar = tqdm(total=len(requests), disable=(self.rank != 0), desc="V-Thinker responding")
        for i, request in enumerate(requests):
            key, sample, gen_kwargs = self._sample_for(request)
            config = self._loop_config(gen_kwargs)
            folder = records.folder_for(self.image_dir, key)
            record = load_record(folder) if self.resume else None
            if record is not None:
                check_resumable(record, generation_identity(self.settings, config, sample.max_rounds), folder)
            if record is not None and not record.get("error"):  # done by an earlier, interrupted run
                records.register(key, record)
                results[i] = GenerationResult(text=record.get("text", ""))
                pbar.update(1)
                continue
            group = (config.max_new_tokens, config.temperature, config.top_p)
            configs[group] = config
            groups[group].append((i, key, sample))

        failures: list[str] = []
        for group, members in groups.items():
            self._run_group(configs[group], members, results, failures, pbar)
        pbar.close()
        if failures and len(failures) == sum(len(m) for m in groups.values()):
            # Every sample broke (model or sandbox unusable): fail loudly instead of scoring zeros.
            raise RuntimeError(f"vthinker: all {len(failures)} samples failed; first: {failures[0]}")
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"vthinker: no result for request(s) {missing}")
        return [r for r in results if r is not None]

    def _run_group(
        self,
        config: LoopConfig,
        members: list[tuple[int, str, Sample]],
        results: list[GenerationResult | None],
        failures: list[str],
        pbar: tqdm,
    ) -> None:
        """Run samples sharing one loop configuration; each trajectory is filed as soon as it ends."""
        by_sample = {id(sample): (i, key) for i, key, sample in members}

        def on_result(trajectory: Trajectory) -> None:
            i, key = by_sample[id(trajectory.sample)]
            folder = records.folder_for(self.image_dir, key)
            run = generation_identity(self.settings, config, trajectory.sample.max_rounds)
            record = save_trajectory(trajectory, folder, extra={"key": key, "model": self.spec, "run": run})
            records.register(key, record)
            if trajectory.error:
                failures.append(f"{key}: {trajectory.error}")
                logger.warning(f"vthinker: {key} failed: {trajectory.error}")
            results[i] = GenerationResult(
                text=trajectory.text, token_counts=TokenCounts(output_tokens=trajectory.completion_tokens)
            )
            pbar.update(1)

        loop = InteractionLoop(self.backend, config=config, prompts=self.prompts)
        loop.run([sample for _, _, sample in members], on_result=on_result)

    def generate_until_multi_round(self, requests: list[Instance]) -> list[GenerationResult]:
        """Multi-round tasks get the same treatment: the loop already runs all rounds in one turn."""
        return self.generate_until(requests)

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("the vthinker model generates; loglikelihood tasks are not supported")

    def clean(self) -> None:
        self.backend.close()
        super().clean()

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu
