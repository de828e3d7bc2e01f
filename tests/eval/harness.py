"""Helpers of the harness tests: the scripted rounds and a subprocess runner."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

#: Round 1 draws on the input image (a real sandbox cell producing an image); round 2 answers.
DRAW_ROUND = (
    "<think>I mark the figure.\n<code>\n```python\nfrom PIL import Image, ImageDraw\n"
    "img = Image.open(image_path).convert('RGB')\ndraw = ImageDraw.Draw(img)\n"
    "draw.line((10, 10, 120, 90), fill='red', width=4)\nimg.save(processed_path)\nprint(processed_path)\n"
    "```\n</code>"
)
ANSWER_ROUND = "\nThe drawing shows it.</think><answer>{answer}</answer>"


@dataclass
class Run:
    """A finished subprocess run of a harness."""

    out: Path
    returncode: int
    log: str
    judge_calls: list[dict] = field(default_factory=list)


def run_command(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 300) -> Run:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return Run(out=cwd, returncode=proc.returncode, log=proc.stdout + proc.stderr)


class _JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible ``/chat/completions`` endpoint that always judges ``reply``."""

    reply = "1"
    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).calls.append(body)
        payload = json.dumps({
            "id": "judge-1", "object": "chat.completion", "created": 0, "model": body.get("model", "judge"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": type(self).reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def judge_server(reply: str = "1") -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP judge on 127.0.0.1 (base URL, received requests) for the duration of the block."""
    handler = type("Handler", (_JudgeHandler,), {"reply": reply, "calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler.calls
    finally:
        server.shutdown()
        server.server_close()
