"""A real HTTP server on 127.0.0.1 answering the flywheel like an LLM would, with faults on demand
(tests/flywheel; the throughput benchmark uses the plain scripted server).

It is the suite's one fake OpenAI server (tests/fake_openai.py) answering through the flywheel's demo
responder (:class:`~vthinker_plugins.flywheel.scripted.DemoResponder`) wrapped by :class:`FaultyResponder`:
``server.faults[task_id] = "kind"`` makes the requests about that task (matched on their ``Task id:`` line)
misbehave. Kinds:

- generator replies: ``malformed`` (never JSON), ``malformed_once``, ``crash`` (image code raises),
  ``crash_once``, ``hang`` (image code never ends), ``huge`` (a 3000x3000 figure), ``blank``,
  ``unchanged`` (the drawing step changes nothing), ``wrong_answer_once`` (the checker objects, then
  the repair fixes it);
- checker replies: ``contradict`` (consistent, but the checker's own answer differs),
  ``checker_garbage`` (never JSON);
- transport: ``http500_twice`` (the first two requests of the task get HTTP 500), ``timeout_once``
  (the first request sleeps past the client's timeout), ``down`` (always HTTP 500);
- evolve replies (keyed by the knowledge point's id): ``malformed``.

Tasks without a fault get the demo responder's answers, its own flawed first drafts included.

Every request is recorded (``server.log``: task id, request kind, text, number of images).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from fake_openai import FakeOpenAI

from vthinker_plugins.flywheel.prompts import CHECK, EVOLVE, GENERATE, REPAIR
from vthinker_plugins.flywheel.scripted import (
    DemoResponder,
    ScriptedReply,
    field_after,
    json_blocks,
    request_kind,
    request_text,
    scripted_problem,
)

SLOW_S = 2.5  # what timeout_once sleeps; the tests' client timeout is shorter


class FaultyResponder:
    def __init__(self) -> None:
        self.demo = DemoResponder()
        self.faults: dict[str, str] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        text = request_text(body)
        kind = request_kind(text) or "?"
        task = field_after(text, "Task id:") or ""
        if kind == EVOLVE:  # evolve requests are about a knowledge point: faults are keyed by its id
            blocks = json_blocks(text)
            task = str(blocks[0].get("id")) if blocks and isinstance(blocks[0], dict) else ""
        n_images = sum(1 for m in body.get("messages", []) if isinstance(m.get("content"), list)
                       for p in m["content"] if p.get("type") == "image_url")
        with self.lock:
            fault = self.faults.get(task)
            self.calls[(task, kind)] += 1
            n_task = sum(v for (t, _), v in self.calls.items() if t == task)
            self.log.append({"task": task, "kind": kind, "text": text, "images": n_images, "fault": fault})
        if fault is None:
            return self.demo(body)  # the demo's own flawed drafts included
        if fault == "down" or (fault == "http500_twice" and n_task <= 2):
            return ScriptedReply(status=500, error="scripted outage")
        if fault == "timeout_once" and n_task == 1:
            return ScriptedReply(self.demo(body).content, delay=SLOW_S)
        if kind == CHECK:
            if fault == "checker_garbage":
                return ScriptedReply("The figure looks fine to me overall.")
            reply = self.demo(body)
            if fault == "contradict":
                verdict = json.loads(reply.content)
                verdict.update(consistent=True, answer="a quite different answer")
                return ScriptedReply(json.dumps(verdict))
            return reply
        if kind == EVOLVE and fault == "malformed":
            return ScriptedReply("children: none that I can think of")
        if kind not in (GENERATE, REPAIR):
            return self.demo(body)
        first = kind == GENERATE
        if fault == "malformed" or (fault == "malformed_once" and first):
            return ScriptedReply('Sure! Here is the problem: {"question": "What is x?", "image_code": ')
        problem = scripted_problem(text)[0]  # the template's correct problem, without the demo's flaws
        if fault == "crash" or (fault == "crash_once" and first):
            problem["image_code"] = "raise RuntimeError('the figure code broke')\n"
        elif fault == "hang":
            problem["image_code"] = "while True:\n    pass\n"
        elif fault == "huge":
            problem["image_code"] = ("from PIL import Image, ImageDraw\nimg = Image.new('RGB', (3000, 3000), 'white')\n"
                                     "ImageDraw.Draw(img).line([(0, 0), (2999, 2999)], fill='black', width=9)\n"
                                     "img.save(processed_path)\n")
        elif fault == "blank":
            problem["image_code"] = "Image.new('RGB', (448, 448), 'white').save(processed_path)\n"
        elif fault == "unchanged":
            for step in problem["solution"]:
                if step.get("code"):
                    step["code"] = "img = Image.open(image_path)\nimg.save(processed_path)\nprint(processed_path)\n"
        elif fault == "wrong_answer_once" and first:
            problem["answer"] = str(int(float(problem["answer"])) + 7)
        return ScriptedReply(json.dumps(problem))


class FaultyServer(FakeOpenAI):
    """The fake LLM: ``latency_s`` is added to every reply (a simulated model)."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.faulty = FaultyResponder()
        super().__init__(self.faulty, delay=latency_s)

    @property
    def faults(self) -> dict[str, str]:
        return self.faulty.faults

    @property
    def log(self) -> list[dict[str, Any]]:
        return self.faulty.log

    def reset(self) -> None:
        super().reset()
        with self.faulty.lock:
            self.faulty.faults.clear()
            self.faulty.calls.clear()
            self.faulty.log.clear()


def run_args(server: FakeOpenAI, out, *extra: str) -> list[str]:
    """``vthinker flywheel run`` against ``server`` (fast retries and timeouts, no progress bar)."""
    return ["flywheel", "run", "--out", str(out), "--base-url", server.url, "--model", "gen-model",
            "--checker-model", "check-model", "--backoff", "0.01", "--timeout", "1.5", "--retries", "2",
            "--no-progress", *extra]


def task_records(out) -> dict[str, dict[str, Any]]:
    lines = (out / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"duplicated records: {ids}"
    return {r["id"]: r for r in records}


def reason_of(record: dict[str, Any]) -> str:
    return re.sub(r"\s+", " ", f"{record['status']}:{record['reason']}")
