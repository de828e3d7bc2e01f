"""One async chat client for every LLM/LMM the project calls over an OpenAI-compatible endpoint.

The judges of :mod:`vthinker_plugins.scoring.judge` and the generator and checker of the data
flywheel (:mod:`vthinker_plugins.flywheel`) all ask a question and read a structured reply.
:class:`ChatClient` does the part they share: bounded concurrency, a per-request timeout, retries
with backoff, and a ``failed`` reply rather than an exception for the server's faults.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ReplyError(ValueError):
    """A reply that does not say what was asked (raised by ``parse`` callbacks; retried)."""


@dataclass
class ChatReply(Generic[T]):
    """The outcome of one question: ``value`` (what ``parse`` made of the reply) when ``status == "ok"``."""

    status: str  # "ok" | "failed"
    value: T | None = None
    raw: str | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def data_url(data: bytes) -> str:
    """A ``data:`` URL for encoded PNG or JPEG bytes, as chat APIs take images."""
    kind = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


def image_part(data: bytes) -> dict[str, Any]:
    """One image content part of a chat message."""
    return {"type": "image_url", "image_url": {"url": data_url(data)}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


class ChatClient:
    """Ask an OpenAI-compatible ``/chat/completions`` endpoint, with retries.

    Retries (exponential backoff with jitter) on HTTP 5xx/408/409/429, connection errors, timeouts and
    replies the caller's ``parse`` rejects. Other 4xx answers (bad key, unknown model, malformed
    request) fail at once: retrying cannot help. What still fails comes back as
    ``ChatReply(status="failed")`` with the last error; the client never raises for the server's
    faults. httpx connections belong to one event loop, so the client keeps one ``AsyncOpenAI`` per
    running loop (sync callers that run a fresh loop per call get a fresh connection pool).

    Args:
        base_url: endpoint root, e.g. ``http://host:8000/v1`` (vLLM) or ``https://api.openai.com/v1``.
        model: the served model name.
        api_key: defaults to ``OPENAI_API_KEY``, else a placeholder (local servers ignore it).
        concurrency: most requests in flight at once (per event loop).
        timeout: seconds per request.
        retries: further attempts after a failed one.
        backoff: first retry delay in seconds, doubled per attempt (with jitter), capped at 30 s.
        stats: a counter to count into (``requests``, ``retried``, ``timeout``, ``http_error``, ``malformed``);
            default: a fresh one in :attr:`stats`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        stats: collections.Counter[str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not model:
            raise ValueError("empty model name")
        from openai import AsyncOpenAI  # imported here, not inside the event loop (a slow first import)

        self._client_class = AsyncOpenAI
        self.base_url = base_url
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.stats: collections.Counter[str] = stats if stats is not None else collections.Counter()
        self._lock = threading.Lock()
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, Any, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:
        return f"ChatClient(model={self.model!r}, base_url={self.base_url!r})"

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _client(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:  # one client may serve event loops in several threads
            entry = self._clients.get(id(loop))
            if entry is None or entry[0] is not loop:
                client = self._client_class(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout,
                                            max_retries=0)
                entry = (loop, client, asyncio.Semaphore(self.concurrency))
                self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
                self._clients[id(loop)] = entry
            return entry[1], entry[2]

    async def ask(
        self,
        messages: list[dict[str, Any]],
        parse: Callable[[str | None], T] | None = None,
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> ChatReply[T]:
        """Send ``messages``; ``parse(reply_text)`` turns the reply into the value, raising
        :class:`ReplyError` (or returning ``None``) for a malformed one, which is retried."""
        client, semaphore = self._client()
        error, raw = "", None
        attempt = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self._count("retried")
                delay = min(30.0, self.backoff * 2 ** (attempt - 1)) * (0.75 + 0.5 * random.random())
                await asyncio.sleep(delay)
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
            if max_tokens is not None:
                kwargs["max_tokens"] = max_tokens
            try:
                async with semaphore:
                    self._count("requests")
                    response = await asyncio.wait_for(client.chat.completions.create(**kwargs),
                                                      timeout=self.timeout + 5)
                raw = response.choices[0].message.content if response.choices else None
            except TimeoutError as exc:
                self._count("timeout")
                error = f"timeout after {self.timeout}s ({type(exc).__name__})"
                continue
            except Exception as exc:  # noqa: BLE001 -- openai.APIError family, connection errors, bad server JSON
                name = type(exc).__name__
                self._count("timeout" if "Timeout" in name else "http_error")
                error = f"{name}: {str(exc)[:300]}"
                status = getattr(exc, "status_code", None)
                if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
                    break  # bad key, unknown model, malformed request: retrying cannot help
                continue
            if parse is None:
                return ChatReply(status="ok", value=raw, raw=raw, attempts=attempt + 1)  # type: ignore[arg-type]
            try:
                value = parse(raw)
            except ReplyError as exc:
                value, error = None, f"malformed reply: {exc}"
            else:
                error = f"malformed reply: {str(raw)[:200]!r}"
            if value is None:
                self._count("malformed")
                continue
            return ChatReply(status="ok", value=value, raw=raw, attempts=attempt + 1)
        return ChatReply(status="failed", raw=raw, error=error, attempts=attempt + 1)

    async def aclose(self) -> None:
        """Close the HTTP client of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(id(loop), None)
        if entry is not None:
            await entry[1].close()
