"""LMM/LLM judges over any OpenAI-compatible chat endpoint (vLLM-served Qwen3-VL, GPT-4o, ...).

:class:`Judge` asks binary (0/1) questions -- is a drawing right, do two answers agree, does an
answer follow from its reasoning -- and never invents an answer. Calls are async, retried and cached
on disk; a call that still fails is reported as ``judge_failed``, never scored. The prompts are this
project's own (:data:`DEFAULT_JUDGE_PROMPTS`); a file can replace any of them.

Design notes (failures, cache, the official VTBench prompt): docs/scoring.md.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import io
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.llm_client import ChatClient, image_part

JUDGE_TASKS = ("perception", "instruction", "answer", "consistency")

DEFAULT_JUDGE_PROMPTS: dict[str, str] = {
    "perception": (
        "You are grading a visual perception task. A model was asked to mark points or elements on an image "
        "by drawing on it.\n"
        "Task given to the model:\n{question}\n\n"
        "You are shown three images: [Original] the input image, [Generated] the image the model drew, "
        "[Ground Truth] the same image with the correct marks.\n"
        "Decide whether the Generated image marks every requested point or element at the place the Ground "
        "Truth marks it. Small offsets, other colours, marker shapes or label fonts do not matter; a missing "
        "mark, a mark at a clearly different place, or marks of things not requested do.\n"
        "Reply with a single digit: 1 if the Generated image is correct, 0 if it is not."
    ),
    "instruction": (
        "You are grading an instruction-guided drawing task. A model was asked to draw a construction on an "
        "image (auxiliary lines, points, regions, labels).\n"
        "Instruction given to the model:\n{instruction}\n\n"
        "You are shown three images: [Original] the input image, [Generated] the image the model drew, "
        "[Ground Truth] a correct construction.\n"
        "Decide whether the Generated construction is conceptually correct: the right elements are drawn "
        "between the right points and with the right relations (e.g. perpendicular, parallel, through a "
        "midpoint). Allow moderate spatial tolerance: it need not coincide pixel for pixel with the Ground "
        "Truth, and colours and line styles do not matter.\n"
        "Reply with a single digit: 1 if the construction is correct, 0 if it is not."
    ),
    "answer": (
        "You check whether a model's answer to a question matches the reference answer.\n"
        "Question:\n{question}\n\nReference answer:\n{gold}\n\nModel's answer:\n{prediction}\n\n"
        "They match if they state the same final result, allowing equivalent forms (fractions vs decimals, "
        "units written or omitted, an option letter vs the option's text). Ignore how the answer was reached.\n"
        "Reply with a single digit: 1 if they match, 0 if they do not."
    ),
    "consistency": (
        "Below is the end of a solution's reasoning and the final answer the solution gives.\n"
        "End of the reasoning:\n{reasoning}\n\nFinal answer:\n{answer}\n\n"
        "Is the final answer the conclusion the reasoning actually reaches (not contradicting it, not a "
        "different value)?\n"
        "Reply with a single digit: 1 if consistent, 0 if not."
    ),
}

_FIELDS = ("question", "instruction", "prediction", "gold", "reasoning", "answer")
_THINK_RE = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_LABELLED_RE = re.compile(
    r"(?:score|judgement|judgment|verdict|result|rating|answer|output|grade)\W{0,6}?\s*[:=：]\s*[\*\[\(\"'`]*\s*([01])\b",
    re.I,
)
_JSON_KEYS = ("score", "judgement", "judgment", "verdict", "result", "answer", "correct", "consistent", "match")


@dataclass
class JudgeResult:
    """One judge verdict. ``value``: 1/0, or ``None`` when ``status`` is ``failed``/``skipped``."""

    value: int | None
    status: str  # "ok" | "failed" | "skipped"
    raw: str | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _binary(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().strip(".").lower() in ("0", "1", "true", "false", "yes", "no"):
        return int(value.strip().strip(".").lower() in ("1", "true", "yes"))
    return None


def parse_judgement(reply: str | None) -> int | None:
    """Read a 0/1 verdict from a judge reply, or ``None`` when the reply is malformed.

    Accepted: a bare ``0``/``1`` (markdown, brackets, a final dot allowed), a JSON object
    with a ``score``/``judgement``/``result``/... field, or a labelled ``Score: 1`` (the last
    one wins). Reasoning in ``<think>`` is ignored. Anything else — prose, two conflicting
    bare digits, other numbers — is malformed.
    """
    if not reply:
        return None
    text = _THINK_RE.sub("", reply).strip()
    bare = text.strip("*`\"' \n\t[]().")
    if bare in ("0", "1"):
        return int(bare)
    body = text.strip("`").removeprefix("json").strip()
    candidates = [body]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, Mapping):
            lowered = {str(k).lower(): v for k, v in data.items()}
            for key in _JSON_KEYS:
                if key in lowered and (value := _binary(lowered[key])) is not None:
                    return value
        elif (value := _binary(data)) is not None:
            return value
    labelled = _LABELLED_RE.findall(text)
    if labelled:
        return int(labelled[-1])
    return None


def _image_bytes(image: Any) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        return buf.getvalue()
    raise TypeError(f"judge image must be a PIL image, PNG/JPEG bytes or a path, got {type(image).__name__}")


class _JudgeCache:
    """Append-only JSONL cache shared by threads (a lock) and processes (``flock`` on append)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._size = 0
        self._refresh()

    def _refresh(self) -> None:
        # Read lines appended since the last look (possibly by another process).
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._size)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._size += len(complete)
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
                self._entries[entry["key"]] = entry
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line never poisons the cache

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key not in self._entries:
                self._refresh()
            return self._entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        line = (json.dumps({"key": key, **entry}, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self._entries[key] = {"key": key, **entry}
            with self.path.open("ab") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    fh.write(line)
                    fh.flush()
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)


class Judge:
    """An async 0/1 judge over an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url``, ``model`` and ``api_key``, and in ``client_options`` ``concurrency``, ``timeout``, ``retries``
    and ``backoff``, are the :class:`~vthinker_plugins.llm_client.ChatClient`'s (which retries 5xx/408/409/429,
    timeouts and malformed replies; other 4xx answers fail at once).

    Args:
        cache_path: JSONL file caching successful verdicts across runs; ``None`` = no cache.
        prompt_files: task (``perception``/``instruction``/``answer``/``consistency``) -> text file
            replacing that task's default prompt (e.g. the official VTBench prompt).
        max_tokens: reply budget; raise it for judges that think before answering.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        cache_path: str | Path | None = None,
        *,
        prompt_files: Mapping[str, str | Path] | None = None,
        temperature: float = 0.0,
        max_tokens: int = 64,
        **client_options: Any,
    ):
        #: calls, ok, failed, cached, retried, http_error, timeout, malformed
        self.stats: collections.Counter[str] = collections.Counter()
        # The shared client does the asking (concurrency, timeout, retries with backoff) and counts
        # retried/timeout/http_error/malformed into the same counter, under the same lock.
        self._chat = ChatClient(base_url, model, api_key, stats=self.stats, **client_options)
        self._stats_lock = self._chat._lock
        for name in ("base_url", "model", "api_key", "concurrency", "timeout", "retries", "backoff"):
            setattr(self, name, getattr(self._chat, name))
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.prompts = dict(DEFAULT_JUDGE_PROMPTS)
        self._custom_prompts: set[str] = set()
        for task, path in (prompt_files or {}).items():
            if task not in JUDGE_TASKS:
                raise ValueError(f"judge prompt_files: unknown task {task!r}; choose from {', '.join(JUDGE_TASKS)}")
            text = Path(path).read_text(encoding="utf-8").strip()
            if not text:
                raise ValueError(f"judge prompt file {path} (task {task}) is empty")
            self.prompts[task] = text
            self._custom_prompts.add(task)
        self.cache = _JudgeCache(cache_path) if cache_path else None

    @classmethod
    def from_env(cls, **overrides: Any) -> Judge | None:
        """A judge configured by ``VTHINKER_JUDGE_URL`` and ``VTHINKER_JUDGE_MODEL`` (both needed;
        ``None`` when unset), ``OPENAI_API_KEY``, and optionally ``VTHINKER_JUDGE_CONCURRENCY``,
        ``VTHINKER_JUDGE_TIMEOUT``, ``VTHINKER_JUDGE_RETRIES``, ``VTHINKER_JUDGE_CACHE`` and
        ``VTHINKER_JUDGE_PROMPT_<TASK>`` (a prompt file per task)."""
        url, model = os.environ.get("VTHINKER_JUDGE_URL"), os.environ.get("VTHINKER_JUDGE_MODEL")
        if not url or not model:
            return None
        kwargs: dict[str, Any] = {"api_key": os.environ.get("OPENAI_API_KEY"), **cls.env_options()}
        kwargs.update(overrides)
        return cls(url, model, **kwargs)

    @staticmethod
    def env_options() -> dict[str, Any]:
        """The optional settings of the ``VTHINKER_JUDGE_*`` variables (see :meth:`from_env`), for judges
        whose endpoint is given otherwise (``vthinker run --judge-url``, VLMEvalKit's ``--judge``)."""
        env = os.environ
        kwargs: dict[str, Any] = {}
        for name, key, cast in (
            ("concurrency", "VTHINKER_JUDGE_CONCURRENCY", int),
            ("timeout", "VTHINKER_JUDGE_TIMEOUT", float),
            ("retries", "VTHINKER_JUDGE_RETRIES", int),
            ("cache_path", "VTHINKER_JUDGE_CACHE", str),
        ):
            if env.get(key):
                try:
                    kwargs[name] = cast(env[key])
                except ValueError as exc:
                    raise ValueError(f"{key}={env[key]!r} is not a valid {cast.__name__}") from exc
        prompt_files = {task: env[f"VTHINKER_JUDGE_PROMPT_{task.upper()}"] for task in JUDGE_TASKS
                        if env.get(f"VTHINKER_JUDGE_PROMPT_{task.upper()}")}
        if prompt_files:
            kwargs["prompt_files"] = prompt_files
        return kwargs

    def __repr__(self) -> str:
        return f"Judge(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ public questions

    async def judge_images(
        self,
        task: str,
        question: str,
        original: Any,
        generated: Any,
        ground_truth: Any,
        instruction: str | None = None,
    ) -> JudgeResult:
        """0/1: does ``generated`` do what ``question``/``instruction`` asked, compared with ``ground_truth``?

        ``task``: ``perception`` or ``instruction`` (the ``vtbench_`` prefix is accepted).
        Images: PIL images, encoded bytes or paths.
        """
        task = task.removeprefix("vtbench_")
        if task not in ("perception", "instruction"):
            raise ValueError(f"judge_images: task must be 'perception' or 'instruction', not {task!r}")
        text = self._prompt(task, question=question, instruction=instruction or question)
        images = [("[Original]", original), ("[Generated]", generated), ("[Ground Truth]", ground_truth)]
        content: list[dict[str, Any]] = []
        digests = []
        for label, image in images:
            data = _image_bytes(image)
            digests.append(hashlib.sha256(data).hexdigest())
            content.append({"type": "text", "text": label})
            content.append(image_part(data))
        content.append({"type": "text", "text": text})
        return await self._ask(task, content, key_parts=[text, *digests])

    async def judge_answer(self, question: str, prediction: str, gold: str) -> JudgeResult:
        """0/1: does ``prediction`` state the same answer as ``gold``?"""
        text = self._prompt("answer", question=question, prediction=prediction, gold=gold)
        return await self._ask("answer", text, key_parts=[text])

    async def judge_consistency(self, reasoning_tail: str, answer: str) -> JudgeResult:
        """0/1: is ``answer`` the conclusion the reasoning (its last part, ``reasoning_tail``) reaches?"""
        text = self._prompt("consistency", reasoning=reasoning_tail, answer=answer)
        return await self._ask("consistency", text, key_parts=[text])

    def unreachable_reason(self, timeout: float = 5.0) -> str | None:
        """``None`` when the endpoint answers HTTP at all (one ``GET <base_url>/models``; an error status
        still means a server is there), else why not -- for a warning before any sample is judged."""
        import httpx

        url = self.base_url.rstrip("/") + "/models"
        try:
            httpx.get(url, timeout=timeout, headers={"Authorization": f"Bearer {self.api_key}"})
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"[:300]
        return None

    async def aclose(self) -> None:
        """Close the HTTP clients created on the running event loop."""
        await self._chat.aclose()

    # ------------------------------------------------------------------ internals

    def _prompt(self, task: str, **fields: str | None) -> str:
        template = self.prompts[task]
        present = [name for name in _FIELDS if "{" + name + "}" in template]
        if not present and task in self._custom_prompts:
            # An official prompt without fields: append what the judge must know.
            extra = "\n\n".join(f"{name.capitalize()}:\n{value}" for name, value in fields.items() if value)
            return f"{template}\n\n{extra}" if extra else template
        for name in _FIELDS:  # str.replace, not format: official texts contain other braces
            template = template.replace("{" + name + "}", str(fields.get(name) or ""))
        return template

    def _count(self, *names: str) -> None:
        with self._stats_lock:
            for name in names:
                self.stats[name] += 1

    def _key(self, task: str, key_parts: list[str]) -> str:
        digest = hashlib.sha256()
        for part in (task, self.model, str(self.temperature), *key_parts):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
        return digest.hexdigest()

    async def _ask(self, task: str, content: Any, key_parts: list[str]) -> JudgeResult:
        self._count("calls")
        key = self._key(task, key_parts)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self._count("cached", "ok")
            return JudgeResult(value=int(hit["value"]), status="ok", raw=hit.get("raw"), cached=True)
        reply = await self._chat.ask([{"role": "user", "content": content}], parse_judgement,
                                     temperature=self.temperature, max_tokens=self.max_tokens)
        if not reply.ok:
            self._count("failed")
            return JudgeResult(value=None, status="failed", raw=reply.raw, error=reply.error, attempts=reply.attempts)
        value = int(reply.value)
        if self.cache is not None:
            entry = {"value": value, "raw": reply.raw, "task": task, "model": self.model, "time": time.time()}
            self.cache.put(key, entry)
        self._count("ok")
        return JudgeResult(value=value, status="ok", raw=reply.raw, attempts=reply.attempts)
