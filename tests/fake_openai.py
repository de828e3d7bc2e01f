"""The one fake OpenAI-compatible server of the test suite: real HTTP on 127.0.0.1, for what cannot run here
(a remote judge, an API model, the flywheel's LLMs).

:class:`FakeOpenAI` serves ``POST /v1/chat/completions`` and ``GET /v1/models``. A *responder*
(``callable(request) -> Reply | str``) says what each chat request gets; every request is recorded
(:attr:`FakeOpenAI.requests`, each a :class:`ChatRequest`: the JSON body as sent, with parsed views).
Server-wide knobs a test may turn at any time: ``status`` (answer every request with that HTTP
error: a server that is down), ``delay`` (seconds before every reply: a slow model), and the
``MODE:slow`` marker in a request (that request waits ``slow_seconds``: past a client's timeout).

The default responder, :func:`judge`, is a fake judge that *decides from what it is shown*: answer
and consistency prompts (``vthinker_plugins/scoring/judge.py``) by comparing the values they quote,
three-image drawing prompts by decoding the images and comparing the ``[Generated]`` marks with the
``[Ground Truth]`` marks. ``MODE:<name>`` in a judge prompt forces a behaviour instead (see :func:`judge`).

Importable from every test area: pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``
(rootdir conftest, no ``__init__.py``), so ``from fake_openai import FakeOpenAI`` works anywhere.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

_MODE_RE = re.compile(r"MODE:(\w+)")


@dataclass
class Reply:
    """What one request gets: ``content`` as the assistant message, or HTTP ``status`` with ``error``.

    The flywheel's ``ScriptedReply`` (content/status/error/delay) is accepted as well.
    """

    content: str | None = None
    status: int = 200
    error: str = ""
    error_type: str = "server_error"
    delay: float = 0.0
    finish_reason: str = "stop"
    stop_reason: str | None = None  # vLLM's matched stop string


class ChatRequest(dict):
    """One recorded request: the JSON body as sent (a dict), plus parsed views of it."""

    def __init__(self, body: dict[str, Any], path: str, nth: int) -> None:
        super().__init__(body)
        self.path = path
        self.nth = nth  # this is the nth request carrying its mode (MODE:<name>, "" for none)

    @cached_property
    def parts(self) -> list[dict[str, Any]]:
        """Every content part of every message, in order (a string content is one text part)."""
        out: list[dict[str, Any]] = []
        for message in self.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                out.append({"type": "text", "text": content})
            elif isinstance(content, list):
                out += [p for p in content if isinstance(p, dict)]
        return out

    @cached_property
    def text(self) -> str:
        """All text of the request, image parts left out."""
        return "\n".join(p.get("text", "") for p in self.parts if p.get("type") == "text")

    @cached_property
    def mode(self) -> str:
        """The ``MODE:<name>`` marker a test put in the request's text, ``""`` when there is none."""
        match = _MODE_RE.search(self.text)
        return match.group(1) if match else ""

    @cached_property
    def images(self) -> list[Image.Image]:
        """The request's images (base64 data URLs), decoded, in order."""
        return [decode_image(p["image_url"]["url"]) for p in self.parts if p.get("type") == "image_url"]

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        return [image.size for image in self.images]

    @cached_property
    def image_labels(self) -> list[str]:
        """The text part just before each image (the judge labels them ``[Original]`` etc.)."""
        labels, last = [], ""
        for part in self.parts:
            if part.get("type") == "text":
                last = part.get("text", "")
            elif part.get("type") == "image_url":
                labels.append(last)
        return labels


Responder = Callable[[ChatRequest], "Reply | str | Any"]


class FakeOpenAI:
    """An OpenAI-compatible endpoint on 127.0.0.1 (``url`` ends in ``/v1``) answering through ``responder``.

    Use as a context manager or call :meth:`close`. ``max_in_flight`` is the most requests handled at once.
    """

    def __init__(self, responder: Responder | None = None, *, delay: float = 0.0, models: tuple[str, ...] = ("fake",),
                 slow_seconds: float = 2.0) -> None:
        self.responder = responder or judge
        self._knobs = (delay, slow_seconds)
        self.status: int | None = None
        self.delay, self.slow_seconds = self._knobs
        self.models = models
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="fake-openai").start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def calls(self, mode: str = "") -> int:
        """How many requests carried ``MODE:<mode>`` (``""``: requests without a marker)."""
        with self._lock:
            return self._counts[mode]

    def reset(self) -> None:
        """Forget the requests and counts, knobs back as built (after letting requests a client gave up on end)."""
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            self.requests.clear()
            self._counts.clear()
            self.max_in_flight = 0
        self.status = None
        self.delay, self.slow_seconds = self._knobs

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            probe = ChatRequest(body, path, 0)
            self._counts[probe.mode] += 1
            request = ChatRequest(body, path, self._counts[probe.mode])
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.responder(request)
            if isinstance(reply, str):
                reply = Reply(reply)
            wait = self.delay + getattr(reply, "delay", 0.0) + (self.slow_seconds if request.mode == "slow" else 0.0)
            time.sleep(wait)
        finally:
            with self._lock:
                self.in_flight -= 1
        if self.status is not None:
            return self.status, {"error": {"message": f"fake outage (HTTP {self.status})", "type": "server_error"}}
        if reply.status != 200:
            return reply.status, {"error": {"message": reply.error or "fake error",
                                            "type": getattr(reply, "error_type", "server_error")}}
        return 200, {
            "id": f"chatcmpl-fake-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.models[0]),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                         "finish_reason": getattr(reply, "finish_reason", "stop"),
                         "stop_reason": getattr(reply, "stop_reason", None)}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            self._send(*server._answer(self.path, json.loads(raw or b"{}")))

    return Handler


def decode_image(url: str) -> Image.Image:
    """A ``data:image/...;base64,`` URL as an RGB image."""
    assert url.startswith("data:image/"), url[:40]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def fixed(content: str) -> Responder:
    """A responder answering every request with ``content`` (an API model with one reply)."""
    return lambda request: Reply(content)


# --------------------------------------------------------------------------- the fake judge

_GARBAGE = "I think the drawing looks reasonable overall."
_VERDICT_MODES = {"one": "1", "zero": "0", "score": "The points match.\nScore: 1",
                  "json": '{"score": 0, "reason": "wrong place"}',
                  "think": "<think>could be 0 or 1; the marks align</think>1", "garbage": _GARBAGE}


def judge(request: ChatRequest) -> Reply:
    """A judge that reads its prompt: the verdict of :func:`decide`, unless a ``MODE:<name>`` marker forces

    ``one``/``zero`` (reply "1"/"0"), ``score``/``json``/``think`` (other verdict formats), ``garbage``
    (prose, no verdict), ``garbage_once`` (prose, then "0"), ``flaky`` (HTTP 500 twice, then "1"),
    ``flaky_once`` (HTTP 500 once, then "1"), ``down`` (always HTTP 500), ``unknown_model`` (HTTP 404, as
    vLLM for a wrong model name). ``MODE:slow`` only delays (the server's ``slow_seconds``).
    """
    mode, n = request.mode, request.nth
    if mode == "down" or (mode == "flaky" and n <= 2) or (mode == "flaky_once" and n == 1):
        return Reply(status=500, error="internal error")
    if mode == "unknown_model":
        return Reply(status=404, error=f"The model `{request.get('model')}` does not exist.",
                     error_type="NotFoundError")
    if mode in ("flaky", "flaky_once"):
        return Reply("1")
    if mode == "garbage_once":
        return Reply(_GARBAGE if n == 1 else "0")
    if mode in _VERDICT_MODES:
        return Reply(_VERDICT_MODES[mode])
    return Reply(decide(request))


def decide(request: ChatRequest) -> str:
    """The verdict ("1"/"0") a careful judge would give this request, or prose when it cannot tell."""
    if request.image_labels[-3:] == ["[Original]", "[Generated]", "[Ground Truth]"]:
        original, generated, truth = request.images[-3:]
        return "1" if marks_agree(original, generated, truth) else "0"
    text = request.text
    gold = _between(text, ("Reference answer:\n", "Gold:\n"), ("\n\nModel's answer:", "\n\n", None))
    said = _between(text, ("Model's answer:\n", "Prediction:\n"), ("\n\nThey match if", "\n\nGold:", None))
    if gold is not None and said is not None:
        return "1" if same_answer(said, gold) else "0"
    reasoning = _between(text, ("End of the reasoning:\n", "Reasoning:\n"), ("\n\nFinal answer:", "\n\nAnswer:", None))
    answer = _between(text, ("Final answer:\n", "Answer:\n"), ("\n\nIs the final answer", None))
    if reasoning is not None and answer is not None:
        return "1" if concludes(reasoning, answer) else "0"
    return "I cannot tell what I am asked to judge."


def _between(text: str, starts: tuple[str, ...], ends: tuple[str | None, ...]) -> str | None:
    for start in starts:
        at = text.find(start)
        if at < 0:
            continue
        rest = text[at + len(start):]
        for end in ends:
            if end is None:
                return rest.strip()
            if (stop := rest.find(end)) >= 0:
                return rest[:stop].strip()
    return None


_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b", re.I)


def _numbers(text: str) -> list[float]:
    out = []
    for token in _NUMBER_RE.findall(text):
        token = token.lower()
        if token in _NUMBER_WORDS:
            out.append(float(_NUMBER_WORDS[token]))
        elif "/" in token:
            num, den = token.split("/")
            out.append(float(num) / float(den) if float(den) else float("nan"))
        else:
            out.append(float(token))
    return out


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", re.sub(r"</?answer>", "", text.lower())).strip()


def same_answer(prediction: str, gold: str) -> bool:
    """Equal first values (digits, fractions or number words: "5 triangles" is "five"), else equal words."""
    said, wanted = _numbers(prediction), _numbers(gold)
    if said and wanted:
        return abs(said[0] - wanted[0]) < 1e-6
    return bool(_words(gold)) and _words(prediction) == _words(gold)


def concludes(reasoning: str, answer: str) -> bool:
    """The reasoning's last value is the answer's (or, without values, the answer's words end it)."""
    said, wanted = _numbers(reasoning), _numbers(answer)
    if said and wanted:
        return abs(said[-1] - wanted[0]) < 1e-6
    return bool(_words(answer)) and _words(answer) in _words(reasoning)


def _marks(image: Image.Image, original: Image.Image) -> np.ndarray:
    if image.size != original.size:
        image = image.resize(original.size)
    diff = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(original, dtype=np.int16)).max(axis=2)
    return diff > 40


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    grown = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * radius + 1))
    return np.asarray(grown) > 0


def marks_agree(original: Image.Image, generated: Image.Image, truth: Image.Image, radius: int = 12) -> bool:
    """Do the marks drawn on ``generated`` lie where the ``truth`` marks are, and cover them (within
    ``radius`` pixels; colours and small offsets do not matter)? Nothing to mark and nothing drawn agree."""
    drawn, wanted = _marks(generated, original), _marks(truth, original)
    if not wanted.any() or not drawn.any():
        return not wanted.any() and not drawn.any()
    placed = (drawn & _near(wanted, radius)).sum() / drawn.sum()
    covered = (wanted & _near(drawn, radius)).sum() / wanted.sum()
    return bool(placed >= 0.6 and covered >= 0.6)
