"""One place that turns settings into the parts of a run: backend, loop config, prompts and judge.

``vthinker run``, the lmms-eval model and tasks, the VLMEvalKit model and datasets and the GRPO rewards
all build them here, so a setting means the same everywhere (e.g. the judge's ``VTHINKER_JUDGE_*``
options: prompt files, cache, limits).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vthinker_plugins.loop import InteractionLoop, LoopConfig
from vthinker_plugins.protocol import DEFAULT_PROMPTS, PromptSet

DEFAULT_MAX_ROUNDS = 5
DEFAULT_MAX_NEW_TOKENS = 16384


@dataclass
class JudgeSettings:
    """An LLM judge endpoint. Options: ``defaults`` < the ``VTHINKER_JUDGE_*`` variables < ``overrides``."""

    model: str
    base_url: str
    api_key: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **defaults: Any) -> JudgeSettings | None:
        """``VTHINKER_JUDGE_URL`` + ``VTHINKER_JUDGE_MODEL`` (both needed; ``None`` when unset)."""
        url, model = os.environ.get("VTHINKER_JUDGE_URL"), os.environ.get("VTHINKER_JUDGE_MODEL")
        if not url or not model:
            return None
        return cls(model, url, api_key=os.environ.get("OPENAI_API_KEY"), defaults=defaults)

    @classmethod
    def resolve(cls, model: str | None = None, url: str | None = None, api_key: str | None = None,
                **defaults: Any) -> JudgeSettings | None:
        """``model``/``url`` given (e.g. ``--judge-model``/``--judge-url``), else ``VTHINKER_JUDGE_MODEL``/
        ``VTHINKER_JUDGE_URL``, the URL else ``OPENAI_BASE_URL`` or OpenAI's; ``None`` without a model."""
        model = model or os.environ.get("VTHINKER_JUDGE_MODEL") or None
        if model is None:
            if url:
                raise ValueError("--judge-url needs --judge-model")
            return None
        url = url or os.environ.get("VTHINKER_JUDGE_URL") or os.environ.get("OPENAI_BASE_URL") \
            or "https://api.openai.com/v1"
        return cls(model, url, api_key=api_key, defaults=defaults)

    def options(self) -> dict[str, Any]:
        from vthinker_plugins.scoring import Judge

        return {**self.defaults, **Judge.env_options(), **self.overrides}

    def prompt_hashes(self) -> dict[str, str]:
        """A short hash of each judge prompt file, by task (what run.json records of them)."""
        hashes = {}
        for task, file in sorted(self.options().get("prompt_files", {}).items()):
            try:
                hashes[task] = hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
            except OSError as exc:
                raise ValueError(f"judge prompt file for {task} ({file}): {exc}") from None
        return hashes


def make_judge(settings: JudgeSettings | None) -> Any:
    """The scoring module's :class:`~vthinker_plugins.scoring.Judge` for ``settings`` (``None``: no judge)."""
    if settings is None:
        return None
    from vthinker_plugins.scoring import Judge

    return Judge(settings.base_url, settings.model, api_key=settings.api_key, **settings.options())


def unreachable_judge_note(judge: Any, what: str) -> str | None:
    """What to say at the start when ``judge`` does not answer (the ``what`` it judges would be left
    unscored), or ``None`` when it answers or there is no judge."""
    reason = None if judge is None else judge.unreachable_reason()
    if reason is None:
        return None
    return (f"the judge {judge.model} at {judge.base_url} is unreachable ({reason}); the {what} it judges stay "
            "unscored (judge_failed, accuracy null)")


@dataclass
class RunSettings:
    """What decides a model's trajectories: the backend spec and options, loop limits and prompts."""

    model: str
    backend_options: dict[str, Any] = field(default_factory=dict)
    max_rounds: int | None = None  # the loop's default; a sample's own max_rounds wins
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_tool_images: int = 10
    max_completion_tokens: int | None = None  # generated + observation tokens of a trajectory (RL budget)
    temperature: float = 0.0
    top_p: float = 1.0
    persistent_state: bool = False
    concurrency: int = 64
    system_prompt_file: str | None = None
    user_prompt_file: str | None = None

    def with_defaults(self, **values: Any) -> RunSettings:
        """A copy where each of ``values`` that is not ``None`` replaces the setting."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def prompts(self) -> PromptSet:
        if self.system_prompt_file or self.user_prompt_file:
            return PromptSet.from_files(self.system_prompt_file, self.user_prompt_file)
        return DEFAULT_PROMPTS

    def loop_config(self) -> LoopConfig:
        return LoopConfig(
            max_rounds=DEFAULT_MAX_ROUNDS if self.max_rounds is None else int(self.max_rounds),
            max_new_tokens=int(self.max_new_tokens),
            max_tool_images=int(self.max_tool_images),
            max_completion_tokens=self.max_completion_tokens,
            temperature=float(self.temperature or 0.0),
            top_p=float(self.top_p or 1.0),
            persistent_state=bool(self.persistent_state),
            concurrency=int(self.concurrency),
        )

    def backend(self) -> Any:
        from vthinker_plugins.backends import make_backend

        return make_backend(self.model, **self.backend_options)

    def loop(self, backend: Any) -> InteractionLoop:
        return InteractionLoop(backend, config=self.loop_config(), prompts=self.prompts())

    def generation_options(self) -> dict[str, str]:
        """Backend options that decide the output: where and how the backend is reached (device, endpoint,
        credentials) may change between runs and never land in a run folder."""
        from vthinker_plugins.backends import is_transport_option

        return {k: str(v) for k, v in sorted(self.backend_options.items()) if not is_transport_option(k)}

    def prompts_hash(self) -> str:
        prompts = self.prompts()
        return hashlib.sha256(f"{prompts.system}\x00{prompts.user_template}".encode()).hexdigest()[:16]
