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
the assistant prefix, so the script needs no state and works in subprocesses
(``vthinker run --model DIR --model-option script=PATH``, lmms-eval, VLMEvalKit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vthinker_plugins.protocol import OBS_CLOSE


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
