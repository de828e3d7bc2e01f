"""A real OpenAI-compatible judge server on 127.0.0.1 for the scoring tests.

It speaks ``POST /v1/chat/completions`` like vLLM does. What it answers is chosen by a
``MODE:<name>`` marker the test puts in the prompt text (the question), so each test
controls its own behaviour:

- ``MODE:one`` / ``MODE:zero`` — reply "1" / "0";
- ``MODE:score`` — "Score: 1" after some prose; ``MODE:json`` — ``{"score": 0}``;
- ``MODE:think`` — a ``<think>`` block mentioning 0, then "1";
- ``MODE:flaky`` — HTTP 500 on the first two requests of that prompt, then "1";
- ``MODE:down`` — always HTTP 500; ``MODE:unknown_model`` — HTTP 404 (as vLLM for a wrong model name);
- ``MODE:slow`` — sleeps ``slow_seconds`` (past the client timeout in the timeout tests);
- ``MODE:garbage`` — prose without a verdict; ``MODE:garbage_once`` — prose first, then "0";
- ``MODE:same`` — for image prompts: "1" when the [Generated] and [Ground Truth] images are
  pixel-identical, else "0" (the server really decodes the images).

Every request is recorded (``server.requests``) with its prompt text and image sizes;
``server.max_in_flight`` is the most requests it handled at once.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image, ImageChops


class JudgeServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.slow_seconds = 2.0
        self.in_flight = 0
        self.max_in_flight = 0  # most requests handled at the same time (checks client concurrency)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload = server.respond(self.path, body)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if status is None:
                    return
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        # Requests a client gave up on (timeouts) may still be sleeping here: let them end first,
        # so that counts and max_in_flight belong to the next test alone.
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            self.requests.clear()
            self.counts.clear()
            self.max_in_flight = 0

    def calls(self, mode: str) -> int:
        with self.lock:
            return self.counts[mode]

    # ------------------------------------------------------------------ behaviour

    def respond(self, path: str, body: dict) -> tuple[int | None, dict]:
        if not path.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {path}"}}
        content = body["messages"][-1]["content"]
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = "\n".join(p["text"] for p in parts if p.get("type") == "text")
        images = [_decode(p["image_url"]["url"]) for p in parts if p.get("type") == "image_url"]
        match = re.search(r"MODE:(\w+)", text)
        mode = match.group(1) if match else "one"
        with self.lock:
            self.counts[mode] += 1
            n = self.counts[mode]
            self.requests.append({"mode": mode, "text": text, "model": body.get("model"),
                                  "temperature": body.get("temperature"),
                                  "image_sizes": [im.size for im in images],
                                  "labels": [p["text"] for p in parts if p.get("type") == "text"][:3]})
        if mode in ("down",) or (mode == "flaky" and n <= 2):
            return 500, {"error": {"message": "internal error", "type": "server_error"}}
        if mode == "unknown_model":
            return 404, {"error": {"message": "The model `judge-model` does not exist.", "type": "NotFoundError"}}
        if mode == "slow":
            time.sleep(self.slow_seconds)
            return _reply("1")
        if mode == "garbage" or (mode == "garbage_once" and n == 1):
            return _reply("I think the drawing looks reasonable overall.")
        replies = {"one": "1", "zero": "0", "flaky": "1", "garbage_once": "0", "score": "The points match.\nScore: 1",
                   "json": '{"score": 0, "reason": "wrong place"}',
                   "think": "<think>could be 0 or 1; the marks align</think>1"}
        if mode == "same":
            same = len(images) == 3 and ImageChops.difference(images[1], images[2]).getbbox() is None
            return _reply("1" if same else "0")
        return _reply(replies.get(mode, "1"))


def _decode(url: str) -> Image.Image:
    data = base64.b64decode(url.split(",", 1)[1])
    return Image.open(io.BytesIO(data)).convert("RGB")


def _reply(text: str) -> tuple[int, dict]:
    return 200, {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "judge",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture(scope="session")
def judge_server():
    server = JudgeServer()
    yield server
    server.close()


@pytest.fixture()
def fresh_server(judge_server):
    judge_server.reset()
    return judge_server
