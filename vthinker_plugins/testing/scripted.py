"""Scripted generation: the REAL model and processor run, but the tokens they emit are forced.

A random tiny model never writes a ``<code>`` block, yet tests must drive the real
``model.generate``, the real processor (with sandbox images fed back) and the real
interaction loop. :class:`ScriptedLogitsProcessor` masks every logit except the
next token of a target text, so generation follows a script while everything
around it (prompt building, image processing, stop strings, batching) is real.

A script lists the text of each generation round, per sample id (``"*"`` matches
any sample). As a JSONL file, one object per line::

    {"id": "*", "rounds": ["<think>look\\n<code>\\nprint(1)\\n</code>", "</think><answer>{answer}</answer>"]}

``{answer}`` is replaced by the sample's reference answer, so a scripted run can
also exercise scoring. The round index is the number of sandbox observations in
the assistant prefix, so the script needs no state and works in subprocesses.

The ``scripted:MODEL`` backend spec (``script=PATH`` option) is the one way in for evaluation
(``vthinker run``, lmms-eval ``pretrained=scripted:DIR,script=PATH``, VLMEvalKit); GRPO uses
:func:`scripted_logits_processors` through :mod:`vthinker_plugins.testing.scripted_grpo`. The
production backends and configs have no script options.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vthinker_plugins.model_family import IM_END
from vthinker_plugins.protocol import OBS_CLOSE

if TYPE_CHECKING:
    from vthinker_plugins.backend import GenerationRequest
    from vthinker_plugins.backends.hf import HFBackend


class Script:
    """Round texts per sample id; ``"*"`` is the fallback for ids without their own entry."""

    def __init__(self, rounds_by_id: Mapping[str, Sequence[str]]) -> None:
        for sid, rounds in rounds_by_id.items():
            if isinstance(rounds, str) or not all(isinstance(r, str) for r in rounds):
                raise ValueError(f"script entry {sid!r}: 'rounds' must be a list of strings")
        self.rounds_by_id = {str(k): list(v) for k, v in rounds_by_id.items()}

    @classmethod
    def load(cls, source: str | Path | Script | Mapping[str, Sequence[str]]) -> Script:
        """From a :class:`Script`, a mapping, or a JSONL file of ``{"id", "rounds"}`` objects."""
        if isinstance(source, Script):
            return source
        if isinstance(source, Mapping):
            return cls(source)
        path = Path(source)
        entries: dict[str, list[str]] = {}
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                entries[str(obj["id"])] = obj["rounds"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: expected {{\"id\": ..., \"rounds\": [...]}} ({exc})") from exc
        if not entries:
            raise ValueError(f"{path}: empty script")
        return cls(entries)

    def text_for(self, sample_id: str | None, assistant_prefix: str, answer: str | None = None) -> str | None:
        """The text to force for this generation step, or ``None`` to let the model generate freely."""
        rounds = self.rounds_by_id.get(str(sample_id)) if sample_id is not None else None
        if rounds is None:
            rounds = self.rounds_by_id.get("*")
        if rounds is None:
            return None
        step = assistant_prefix.count(OBS_CLOSE)
        if step >= len(rounds):
            return None
        return rounds[step].replace("{answer}", answer if answer is not None else "")


class ScriptedLogitsProcessor:
    """Force each row of a batch to emit its target token ids, then an end-of-turn token.

    ``targets[i]`` is ``None`` for rows that generate freely. ``prompt_length`` is
    the (left-padded) length of the batch's input ids, so the step index is the
    number of tokens generated so far. A ``transformers`` ``LogitsProcessor``
    (duck-typed so this module imports without torch).
    """

    def __init__(self, targets: Sequence[Sequence[int] | None], prompt_length: int, eos_token_id: int) -> None:
        self.targets = [None if t is None else list(t) for t in targets]
        self.prompt_length = prompt_length
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = input_ids.shape[1] - self.prompt_length
        for row, target in enumerate(self.targets):
            if target is None:
                continue
            token = target[step] if step < len(target) else self.eos_token_id
            scores[row, :] = float("-inf")
            scores[row, token] = 0.0
        return scores


ScriptSource = str | Path | Script | Mapping[str, Sequence[str]]


def script_token_ids(script: Script, tokenizer: Any, request: GenerationRequest,
                     lock: threading.Lock | None = None) -> list[int] | None:
    """The token ids ``script`` forces for ``request`` (``None``: generate freely). The sample id is the
    request's sample's, else the trajectory key up to ``#``; ``{answer}`` is the sample's answer."""
    sample = request.sample
    text = script.text_for(
        sample.id if sample else request.key.split("#")[0],
        request.assistant_prefix,
        sample.answer if sample else None,
    )
    if text is None:
        return None
    if lock is None:
        return tokenizer.encode(text, add_special_tokens=False)
    with lock:
        return tokenizer.encode(text, add_special_tokens=False)


def scripted_logits_processors(processor: Any, script: ScriptSource) -> Callable[..., list[Any]]:
    """A ``logits_processors(requests, prompt_length)`` factory (the shape
    :class:`~vthinker_plugins.generation.transformers_generator.TransformersGenerator` and the GRPO trainer's
    ``rollout_logits_processors`` take) that forces each request to follow ``script``. GRPO rollouts
    are ``rollout0``, ``rollout1``... per process."""
    plan = Script.load(script)
    tokenizer = getattr(processor, "tokenizer", processor)
    eos = tokenizer.convert_tokens_to_ids(IM_END)

    def factory(requests: Sequence[GenerationRequest], prompt_length: int) -> list[Any]:
        targets = [script_token_ids(plan, tokenizer, req) for req in requests]
        return [ScriptedLogitsProcessor(targets, prompt_length, eos)]

    return factory


def make_scripted_backend(model: str, script: ScriptSource | None = None, **options: Any) -> HFBackend:
    """The ``scripted:MODEL`` spec: a :class:`ScriptedHFBackend` on ``model`` following ``script``."""
    if script is None:
        raise ValueError(f"scripted:{model} needs script=PATH (a JSONL file of {{\"id\", \"rounds\"}} objects)")
    from vthinker_plugins.backends.hf import HFBackend
    from vthinker_plugins.generation.tokens import TOKENIZER_LOCK

    class ScriptedHFBackend(HFBackend):
        """:class:`~vthinker_plugins.backends.hf.HFBackend` whose generation follows a script: the real
        model, processor and loop run, the sampled tokens are forced. ``script`` may be reset (tests share
        one loaded backend); ``None`` lets the model generate freely."""

        name = "scripted"

        def __init__(self, model: str, script: ScriptSource | None, **options: Any) -> None:
            super().__init__(model, **options)
            self.script = Script.load(script) if script is not None else None

        def script_token_ids(self, request: GenerationRequest) -> list[int] | None:
            if self.script is None:
                return None
            return script_token_ids(self.script, self.tokenizer, request, TOKENIZER_LOCK)

        def logits_processors(self, requests: Sequence[GenerationRequest], prompt_length: int) -> list[Any]:
            if self.script is None:
                return []
            targets = [self.script_token_ids(req) for req in requests]
            return [ScriptedLogitsProcessor(targets, prompt_length, self.eos_ids[0])]

    return ScriptedHFBackend(model, script, **options)
