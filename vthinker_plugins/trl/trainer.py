"""``VThinkerGRPOTrainer``: TRL 1.16's GRPO with V-Thinker's sandbox as a multi-turn image tool.

Every rollout of a step runs through the project's one :class:`~vthinker_plugins.loop.InteractionLoop`
and enters through TRL's public ``rollout_func`` with its token ids as sampled and ``env_mask`` (0 on
observation tokens); tool images reach the forward pass through :mod:`vthinker_plugins.trl.compat`.
Design notes: docs/training.md.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from vthinker_plugins.factory import RunSettings
from vthinker_plugins.generation.transformers_generator import TransformersGenerator
from vthinker_plugins.generation.vllm_requests import image_token_runs
from vthinker_plugins.loop import Trajectory
from vthinker_plugins.protocol import IMAGE_PLACEHOLDER
from vthinker_plugins.sample import Sample
from vthinker_plugins.trl.compat import (
    GRPOTrainerBase,
    RolloutMedia,
    colocated_vllm_awake,
    is_vlm,
    log_metric,
    policy_for_generation,
    server_feature_placer,
)
from vthinker_plugins.trl.config import VThinkerGRPOConfig
from vthinker_plugins.trl.rewards import RewardSuite
from vthinker_plugins.trl.rollout import (
    RL_STOP_STRINGS,
    PolicyBackend,
    PromptedLoop,
    RolloutTensors,
    VLLMColocateGenerator,
    VLLMServerGenerator,
    assemble,
)

logger = logging.getLogger(__name__)


def split_prompt(messages: Sequence[dict[str, Any]], where: str) -> tuple[str, str, list[Any]]:
    """System text, user text (``<image>`` placeholders) and images of a conversational prompt."""
    system, user, images = None, [], []
    for message in messages:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if message["role"] == "system":
            system = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        elif message["role"] == "user":
            if user:
                raise ValueError(f"{where}: several user messages; V-Thinker prompts have one user turn")
            for part in parts:
                if part.get("type") == "image":
                    user.append(IMAGE_PLACEHOLDER)
                    images.append(part.get("image"))
                elif part.get("type") == "text":
                    user.append(part.get("text", ""))
        else:
            raise ValueError(f"{where}: unexpected {message['role']!r} message in the prompt")
    if system is None:
        raise ValueError(f"{where}: the prompt has no system message (build rows with vthinker_plugins.trl.data)")
    if any(im is None for im in images):
        raise ValueError(f"{where}: an image slot of the prompt has no image")
    return system, "".join(user), images


class VThinkerGRPOTrainer(GRPOTrainerBase):
    """GRPO whose rollouts write code, run it in the sandbox and see the images it draws.

    Args beyond ``GRPOTrainer``'s:
        reward_funcs: default (``None``): the built-in :class:`RewardSuite` from ``args``
            (accuracy, format, tool, consistency with a judge) with the paper's weights.
        sandbox: a :class:`sandbox.Sandbox`; default: one built from the ``sandbox_*`` fields.
        rollout_logits_processors: ``f(requests, prompt_length) -> [LogitsProcessor]`` for the
            transformers generation path (the scripted GRPO smoke forces its rollouts through it).
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: VThinkerGRPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        callbacks: Any = None,
        optimizers: tuple[Any, Any] = (None, None),
        peft_config: Any = None,
        *,
        sandbox: Any = None,
        rollout_logits_processors: Callable[..., list[Any]] | None = None,
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = VThinkerGRPOConfig(f"{str(name).split('/')[-1]}-vthinker-grpo")
        if not isinstance(args, VThinkerGRPOConfig):
            raise TypeError(f"args must be a VThinkerGRPOConfig, got {type(args).__name__}")
        self.reward_suite: RewardSuite | None = None
        if reward_funcs is None:
            self.reward_suite = RewardSuite.from_config(args)
            reward_funcs = self.reward_suite.functions()
            if args.reward_weights is None:
                args.reward_weights = [args.reward_weight(name) for name in self.reward_suite.names]
        super().__init__(
            model=model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
            peft_config=peft_config,
            rollout_func=_rollout_func,
        )
        if not is_vlm(self):
            raise ValueError("V-Thinker GRPO needs a vision-language model and its processor (got a tokenizer)")
        if self.use_vllm and self.vllm_mode == "colocate" and args.vllm_tensor_parallel_size > 1:
            raise NotImplementedError(
                "multi-turn rollouts with colocated vLLM support vllm_tensor_parallel_size=1 only; "
                "use vllm_mode='server' for tensor-parallel generation"
            )
        if self.is_deepspeed_enabled and not self.use_vllm and not args.ds3_gather_for_generation:
            stage = self.accelerator.state.deepspeed_plugin.zero_stage
            if stage == 3:
                # Ranks run different numbers of rounds; ZeRO-3 forwards would deadlock on their collectives.
                raise ValueError("multi-turn rollouts under ZeRO-3 need ds3_gather_for_generation=True or use_vllm")
        self._apply_pixel_bounds(args)
        if args.freeze_vision_tower:
            self._freeze_vision_tower()
        self._gen_model: Any = None
        self.sandbox = sandbox if sandbox is not None else self._make_sandbox(args)
        # The one settings -> loop mapping every caller uses; the policy being trained generates.
        self.loop_config = RunSettings(
            model="policy",
            max_rounds=args.max_rounds,
            max_new_tokens=args.max_new_tokens_per_round or args.max_completion_length,
            max_tool_images=args.max_tool_images,
            max_completion_tokens=args.max_completion_length,
            temperature=args.temperature,
            top_p=args.top_p,
            persistent_state=args.persistent_state,
            concurrency=args.rollout_concurrency,
        ).loop_config()
        if rollout_logits_processors is not None and self.use_vllm:
            raise ValueError("rollout_logits_processors need transformers generation (use_vllm=False)")
        self._rollout_logits_processors = rollout_logits_processors
        self.backend = PolicyBackend(
            self.processing_class,
            self._make_generator(),
            eos_token_ids=self.eos_token_ids,
            max_batch_size=args.rollout_batch_size,
        )
        self._prompt_checked = False
        #: Timings of the last rollout phase (the benchmark reads them).
        self.last_rollout_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ construction helpers

    def _apply_pixel_bounds(self, args: VThinkerGRPOConfig) -> None:
        """``min_pixels``/``max_pixels`` bound the processor that encodes the rollouts and TRL's forward
        pass, however it was loaded (TRL loads one without them when no processor is given)."""
        if args.min_pixels is None and args.max_pixels is None:
            return
        proc = self.processing_class.image_processor
        size = proc.size
        bounds = {key: size.get(key) if hasattr(size, "get") else None for key in ("shortest_edge", "longest_edge")}
        if None in bounds.values() or not hasattr(proc, "merge_size"):
            raise ValueError(f"min_pixels/max_pixels: {type(proc).__name__} is not a Qwen2-VL-style image processor")
        if args.min_pixels is not None:
            bounds["shortest_edge"] = int(args.min_pixels)
        if args.max_pixels is not None:
            bounds["longest_edge"] = int(args.max_pixels)
        proc.size = bounds

    def _freeze_vision_tower(self) -> None:
        """ViT frozen, projector (the merger) and LLM trained, as in V-Thinker's RL stage."""
        frozen = 0
        for name, param in self.model.named_parameters():
            if ".visual." in f".{name}" and ".merger." not in name:
                param.requires_grad_(False)
                frozen += 1
        if not frozen:
            logger.warning("freeze_vision_tower: no vision-tower parameters found (names without 'visual.')")

    @staticmethod
    def _make_sandbox(args: VThinkerGRPOConfig) -> Any:
        from sandbox import Sandbox, SandboxConfig

        return Sandbox(
            SandboxConfig(
                wall_time_s=args.sandbox_wall_time_s,
                memory_bytes=int(args.sandbox_memory_mb) << 20,
                workers=args.sandbox_workers,
                isolation=args.sandbox_isolation,
            )
        )

    def _sampling_kwargs(self) -> dict[str, Any]:
        kwargs = {
            "repetition_penalty": self.repetition_penalty,
            "top_k": self.top_k,
            "min_p": 0.0 if self.min_p is None else self.min_p,
        }
        kwargs.update(self.args.generation_kwargs or {})
        return kwargs

    def _make_generator(self) -> Any:
        if not self.use_vllm:
            return TransformersGenerator(
                lambda: self._gen_model if self._gen_model is not None else self.accelerator.unwrap_model(self.model),
                self.processing_class,
                self.generation_config,
                stop_strings=RL_STOP_STRINGS,
                logits_processors=self._rollout_logits_processors,
            )
        vllm = self.vllm_generation
        if self.vllm_mode == "colocate":
            return VLLMColocateGenerator(vllm.llm, self.processing_class, self._sampling_kwargs())
        client = getattr(vllm, "vllm_client", None)
        if client is None:  # only the main process holds TRL's client; other ranks talk HTTP on their own
            from trl.generation.vllm_client import VLLMClient

            client = VLLMClient(base_url=vllm.server_base_url or f"http://{vllm.server_host}:{vllm.server_port}",
                                connection_timeout=vllm.server_timeout)
        return VLLMServerGenerator(client, self.processing_class, self._sampling_kwargs(), server_feature_placer(self))

    # ------------------------------------------------------------------ rollouts

    def _samples(self, prompts: Sequence[Any]) -> list[Sample]:
        samples = []
        rows = self.rollout_rows
        answers = [row.get("answer") for row in rows] if rows is not None else [None] * len(prompts)
        if len(answers) != len(prompts):
            raise RuntimeError(f"{len(prompts)} rollout prompts but {len(answers)} rows in the batch")
        for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
            where = f"rollout {i}"
            if not isinstance(prompt, list):
                raise ValueError(f"{where}: expected a conversational prompt (list of messages), got {type(prompt)}")
            system, user, images = split_prompt(prompt, where)
            samples.append(
                Sample(
                    id=f"rollout{i}",
                    question=user,
                    images=images,
                    answer=None if answer is None else str(answer),
                    meta={"system": system, "user": user, "rollout_index": i},
                )
            )
        return samples

    def _check_prompt_rendering(self, prompt: Any, sample: Sample) -> None:
        """Once: the prompt the rollouts use must render exactly as TRL renders it for scoring."""
        if self._prompt_checked:
            return
        from trl.data_utils import apply_chat_template

        trl_text = apply_chat_template({"prompt": prompt}, self.processing_class, **self.chat_template_kwargs)["prompt"]
        ours = self.backend.encoder.prompt_text(sample.meta["system"], sample.meta["user"])
        if trl_text != ours:
            raise ValueError(
                "the rollout prompt differs from TRL's rendering of the dataset prompt; build the dataset with "
                f"vthinker_plugins.trl.data.\nTRL:  {trl_text[:300]!r}\nours: {ours[:300]!r}"
            )
        self._prompt_checked = True

    @contextlib.contextmanager
    def _generation_context(self) -> Iterator[None]:
        if self.use_vllm:
            with colocated_vllm_awake(self):
                yield
            return
        with policy_for_generation(self) as unwrapped:
            self._gen_model = unwrapped
            try:
                yield
            finally:
                self._gen_model = None

    def rollout(self, prompts: Sequence[Any]) -> list[Trajectory]:
        """Run every prompt (already repeated per generation) through the interaction loop."""
        samples = self._samples(prompts)
        self._check_prompt_rendering(prompts[0], samples[0])
        self.backend.reset()
        loop = PromptedLoop(self.backend, self.sandbox, self.loop_config)
        start = time.perf_counter()
        with self._generation_context():
            trajectories = loop.run(samples)
        wall = time.perf_counter() - start
        broken = [t for t in trajectories if t.error and not t.rounds]
        if broken:
            raise RuntimeError(f"rollout {broken[0].sample.id} failed before generating anything: {broken[0].error}")
        for t in trajectories:
            if t.error:
                logger.warning("rollout %s ended early: %s", t.sample.id, t.error)
        self.last_rollout_stats = {
            "rollout_s": wall,
            "tool_s_sum": sum(r.tool_s for t in trajectories for r in t.rounds),
            "sandbox_s_sum": sum(r.result.wall_s for t in trajectories for r in t.rounds if r.result is not None),
            "gen_s_sum": sum(r.gen_s for t in trajectories for r in t.rounds),
        }
        return trajectories

    def _verify_image_tokens(self, rolls: Sequence[RolloutTensors]) -> None:
        """Every image must own exactly its run of image tokens, or TRL would drop all images."""
        proc = self.processing_class.image_processor
        merge = getattr(proc, "merge_size", 2) ** 2
        image_token_id = self.processing_class.image_token_id
        for i, roll in enumerate(rolls):
            runs = image_token_runs(roll.prompt_ids + roll.completion_ids, image_token_id)
            expected = [proc.get_number_of_image_patches(im.height, im.width, {}) // merge for im in roll.images]
            if runs != expected:
                raise RuntimeError(
                    f"rollout {i}: image-token runs {runs} do not match its {len(roll.images)} images {expected}"
                )

    def rollout_step(self, prompts: Sequence[Any]) -> dict[str, Any]:
        """TRL's ``rollout_func`` result for one step's prompts (already repeated per generation)."""
        trajectories = self.rollout(prompts)
        rolls = [assemble(t, self.backend.encoder) for t in trajectories]
        self._verify_image_tokens(rolls)
        logprobs = [r.logprobs for r in rolls]
        self.rollout_media = RolloutMedia(
            completions=[[{"role": "assistant", "content": t.text}] for t in trajectories],
            images=[r.images for r in rolls],
            tool_images=[r.tool_images for r in rolls],
        )
        self._log_tools(trajectories)
        return {
            "prompt_ids": [r.prompt_ids for r in rolls],
            "completion_ids": [r.completion_ids for r in rolls],
            "logprobs": logprobs if all(lp is not None for lp in logprobs) else None,
            "env_mask": [r.tool_mask for r in rolls],
            "tool_statuses": [[str(getattr(res.status, "value", res.status)) for res in t.tool_results]
                              for t in trajectories],
            "rollout_stop": [t.stop_reason for t in trajectories],
        }

    # ------------------------------------------------------------------ metrics

    def _gather_mean(self, values: Sequence[float], device: Any) -> float:
        local = torch.tensor([float(sum(values)), float(len(values))], device=device)
        total, count = self.accelerator.gather(local).view(-1, 2).sum(dim=0).tolist()
        return total / count if count else 0.0

    def _log_tools(self, trajectories: Sequence[Trajectory]) -> None:
        """``tools/*`` metrics of the step (TRL logs the completion lengths, counting model tokens only)."""
        device = self.accelerator.device
        calls = [float(t.n_tool_calls) for t in trajectories]
        errors = [float(t.n_tool_errors) for t in trajectories]
        sums = self.accelerator.gather(torch.tensor([[sum(calls), sum(errors)]], device=device)).sum(dim=0).tolist()
        stats = self.last_rollout_stats
        metrics = {
            "tools/calls_per_rollout": self._gather_mean(calls, device),
            "tools/error_rate": sums[1] / sums[0] if sums[0] else 0.0,
            "tools/rounds": self._gather_mean([float(len(t.rounds)) for t in trajectories], device),
            "tools/images_per_rollout": self._gather_mean([float(len(t.tool_images)) for t in trajectories], device),
            "tools/sandbox_s": self._gather_mean([stats["sandbox_s_sum"]], device),
            "tools/rollout_s": self._gather_mean([stats["rollout_s"]], device),
            "tools/stopped_by_budget": self._gather_mean(
                [1.0 if t.stop_reason == "budget" else 0.0 for t in trajectories], device
            ),
        }
        for name, value in metrics.items():
            log_metric(self, name, value)


def _rollout_func(prompts: list[Any], trainer: VThinkerGRPOTrainer) -> dict[str, Any]:
    """TRL's ``rollout_func(prompts, trainer)``: the trainer's multi-turn rollouts."""
    return trainer.rollout_step(prompts)
