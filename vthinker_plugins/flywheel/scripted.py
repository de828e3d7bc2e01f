"""A scripted stand-in for the generator and checker LLMs, served over real HTTP on 127.0.0.1.

NOT A MODEL. ``vthinker flywheel run`` starts it when no ``--base-url`` is given, so the whole
flywheel runs offline; tests and the throughput benchmark start it too. :class:`ScriptedServer`
serves an OpenAI-compatible chat endpoint answered by a *responder*; :class:`DemoResponder` answers
from templates, with drafts flawed on purpose to exercise the checker-repairer.

Design notes: docs/data.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vthinker_plugins.flywheel.prompts import CHECK, EVOLVE, GENERATE, REPAIR, TASK_LINES

SCRIPTED_MODEL = "scripted"


@dataclass
class ScriptedReply:
    """What the server sends: ``content`` as the assistant message, or an HTTP error; after ``delay`` s."""

    content: str | None = None
    status: int = 200
    error: str = ""
    delay: float = 0.0


Responder = Callable[[dict[str, Any]], ScriptedReply]


def request_text(body: dict[str, Any]) -> str:
    """All text of a chat request (system and user, image parts left out)."""
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(parts)


def request_kind(text: str) -> str | None:
    for kind, line in TASK_LINES.items():
        if line in text:
            return kind
    return None


_JSON_BLOCK_RE = re.compile(r"```json\n(.*?)\n```", re.S)


def json_blocks(text: str) -> list[Any]:
    out = []
    for block in _JSON_BLOCK_RE.findall(text):
        try:
            out.append(json.loads(block))
        except json.JSONDecodeError:
            continue
    return out


def field_after(text: str, label: str) -> str | None:
    match = re.search(re.escape(label) + r"\s*(.+)", text)
    return match.group(1).strip() if match else None


# --------------------------------------------------------------------------- problem templates

_FONT = "font = ImageFont.load_default(size=18)"
_HEAD = ("from PIL import Image, ImageDraw, ImageFont\n"
         "img = Image.new('RGB', ({w}, {h}), 'white')\nd = ImageDraw.Draw(img)\n" + _FONT + "\n")
_SAVE = "img.save(processed_path)\n"
_TOOL_HEAD = ("from PIL import Image, ImageDraw\nimg = Image.open(image_path).convert('RGB')\n"
              "d = ImageDraw.Draw(img)\n")
_TOOL_SAVE = "img.save(processed_path)\nprint(processed_path)\n"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def triangle(rng: random.Random, variant: str, given: float | None) -> dict[str, Any]:
    a, b, c = rng.choice([(3, 4, 5), (6, 8, 10), (5, 12, 13), (8, 15, 17), (9, 12, 15), (12, 16, 20)])
    s = 300 / max(a, b)
    cx, cy = 70, 380
    A, B, C = (cx, round(cy - a * s)), (round(cx + b * s), cy), (cx, cy)
    code = _HEAD.format(w=448, h=448) + (
        f"d.line([{A}, {C}, {B}], fill='black', width=3)\n"
        f"d.rectangle([{cx}, {cy - 18}, {cx + 18}, {cy}], outline='black', width=2)\n"
        + "".join(f"d.ellipse([{x - 5}, {y - 5}, {x + 5}, {y + 5}], fill='blue')\n" for x, y in (A, B, C))
        + f"d.text(({A[0] - 28}, {A[1] - 10}), 'A', fill='blue', font=font)\n"
        f"d.text(({B[0] + 10}, {B[1] - 10}), 'B', fill='blue', font=font)\n"
        f"d.text(({C[0] - 28}, {C[1] - 4}), 'C', fill='blue', font=font)\n"
        f"d.text(({cx - 40}, {(A[1] + cy) // 2}), '{a}', fill='black', font=font)\n"
        f"d.text((({cx} + {B[0]}) // 2, {cy + 12}), '{b}', fill='black', font=font)\n" + _SAVE)
    tool = _TOOL_HEAD + f"d.line([{A}, {B}], fill='red', width=4)\n" + _TOOL_SAVE
    question = f"In the figure, triangle ABC has a right angle at C, CA = {a} and CB = {b}."
    steps = [{"text": "The right angle is at C, so AB is the hypotenuse of the right triangle."},
             {"text": "I draw the hypotenuse AB to complete the triangle.", "code": tool},
             {"text": f"By the Pythagorean theorem, AB = sqrt({a}^2 + {b}^2) = sqrt({a * a + b * b}) = {c}."}]
    answer: float = c
    if variant == "parallel":
        question += " What is the perimeter of triangle ABC?"
        steps.append({"text": f"The perimeter is CA + CB + AB = {a} + {b} + {c} = {a + b + c}."})
        answer = a + b + c
    elif variant == "sequential":
        question += (f" Let k be the answer of the previous problem, k = {_num(given or 0)}. "
                     "What is AB + k?")
        answer = c + (given or 0)
        steps.append({"text": f"Adding k gives {c} + {_num(given or 0)} = {_num(answer)}."})
    else:
        question += " What is the length of AB?"
    return {"question": question, "image_code": code, "solution": steps, "answer": _num(answer),
            "points": {"A": list(A), "B": list(B), "C": list(C)}}


def bar_chart(rng: random.Random, variant: str, given: float | None) -> dict[str, Any]:
    n = rng.randint(4, 6)
    labels = "ABCDEF"[:n]
    values = [rng.randint(1, 9) for _ in range(n)]
    while len(set(values)) < 3:
        values = [rng.randint(1, 9) for _ in range(n)]
    x0, y0, unit, width = 60, 400, 34, 48
    lines = [f"d.line([({x0}, 60), ({x0}, {y0}), (430, {y0})], fill='black', width=2)"]
    for t in range(0, 11, 2):
        y = y0 - t * unit
        lines.append(f"d.line([({x0 - 5}, {y}), (430, {y})], fill=(220, 220, 220), width=1)")
        lines.append(f"d.text(({x0 - 30}, {y - 9}), '{t}', fill='black', font=font)")
    tops = []
    for i, v in enumerate(values):
        left = x0 + 15 + i * (width + 14)
        top = y0 - v * unit
        tops.append((left, top))
        lines.append(f"d.rectangle([{left}, {top}, {left + width}, {y0}], fill=(70, 130, 180), outline='black')")
        lines.append(f"d.text(({left + width // 2 - 5}, {y0 + 8}), '{labels[i]}', fill='black', font=font)")
    code = _HEAD.format(w=448, h=448) + "\n".join(lines) + "\n" + _SAVE
    hi, lo = max(values), min(values)
    y_hi, y_lo = y0 - hi * unit, y0 - lo * unit
    tool = _TOOL_HEAD + (f"d.line([({x0}, {y_hi}), (430, {y_hi})], fill='red', width=3)\n"
                         f"d.line([({x0}, {y_lo}), (430, {y_lo})], fill='green', width=3)\n") + _TOOL_SAVE
    steps = [{"text": "I mark the tops of the tallest and the shortest bars with horizontal lines.", "code": tool},
             {"text": f"The red line meets the axis at {hi} and the green line at {lo}."}]
    if variant == "parallel":
        top2 = sorted(values)[-2:]
        question = ("In the bar chart, what is the sum of the two tallest bars minus the shortest bar?")
        answer: float = sum(top2) - lo
        steps.append({"text": f"The two tallest bars are {top2[1]} and {top2[0]}; "
                              f"{top2[1]} + {top2[0]} - {lo} = {_num(answer)}."})
    elif variant == "sequential":
        question = (f"Let k be the answer of the previous problem, k = {_num(given or 0)}. In the bar chart, what is "
                    "k plus the difference between the tallest and the shortest bar?")
        answer = hi - lo + (given or 0)
        steps.append({"text": f"The difference is {hi} - {lo} = {hi - lo}; adding k gives {_num(answer)}."})
    else:
        question = "In the bar chart, how much taller is the tallest bar than the shortest bar?"
        answer = hi - lo
        steps.append({"text": f"The difference is {hi} - {lo} = {hi - lo}."})
    return {"question": question, "image_code": code, "solution": steps, "answer": _num(answer)}


def line_graph(rng: random.Random, variant: str, given: float | None) -> dict[str, Any]:
    k = rng.choice([-2, -1, 1, 2])
    b = rng.randint(-2, 2)
    xs = [x for x in range(-5, 6) if -5 <= k * x + b <= 5]
    xa, xb = sorted(rng.sample(xs, 2))
    x1 = rng.choice([x for x in xs if x not in (xa, xb, 0)] or [x for x in xs if x not in (xa, xb)])
    ox, oy, u = 224, 224, 38  # origin and pixels per unit

    def px(x: float, y: float) -> tuple[int, int]:
        return round(ox + x * u), round(oy - y * u)

    lines = []
    for t in range(-5, 6):
        lines.append(f"d.line([{px(t, -5.5)}, {px(t, 5.5)}], fill=(225, 225, 225), width=1)")
        lines.append(f"d.line([{px(-5.5, t)}, {px(5.5, t)}], fill=(225, 225, 225), width=1)")
    lines.append(f"d.line([{px(-5.5, 0)}, {px(5.5, 0)}], fill='black', width=2)")
    lines.append(f"d.line([{px(0, -5.5)}, {px(0, 5.5)}], fill='black', width=2)")
    for t in (-4, -2, 2, 4):
        lines.append(f"d.text(({px(t, 0)[0] - 6}, {oy + 4}), '{t}', fill='black', font=font)")
        lines.append(f"d.text(({ox + 6}, {px(0, t)[1] - 9}), '{t}', fill='black', font=font)")
    x_lo, x_hi = max(-5.5, (-5.5 - b) / k if k > 0 else (5.5 - b) / k), min(5.5, (5.5 - b) / k if k > 0
                                                                               else (-5.5 - b) / k)
    lines.append(f"d.line([{px(x_lo, k * x_lo + b)}, {px(x_hi, k * x_hi + b)}], fill='purple', width=3)")
    A, B = px(xa, k * xa + b), px(xb, k * xb + b)
    for name, (x, y) in (("A", A), ("B", B)):
        lines.append(f"d.ellipse([{x - 6}, {y - 6}, {x + 6}, {y + 6}], fill='red')")
        lines.append(f"d.text(({x + 9}, {y - 24}), '{name}', fill='red', font=font)")
    code = _HEAD.format(w=448, h=448) + "\n".join(lines) + "\n" + _SAVE
    y1 = k * x1 + b
    P = px(x1, y1)
    tool = _TOOL_HEAD + (f"d.line([{px(x1, 0)}, {P}], fill='orange', width=3)\n"
                         f"d.line([{P}, {px(0, y1)}], fill='orange', width=3)\n"
                         f"d.ellipse([{P[0] - 9}, {P[1] - 9}, {P[0] + 9}, {P[1] + 9}], outline='orange', width=3)\n"
                         ) + _TOOL_SAVE
    steps = [{"text": f"A = ({xa}, {k * xa + b}) and B = ({xb}, {k * xb + b}) lie on the line, so its slope is "
                      f"{k} and its y-intercept is {b}."}]
    if variant == "parallel":
        question = ("The line passes through the marked points A and B. What is the sum of its slope, its "
                    f"y-intercept and its value at x = {x1}?")
        answer: float = k + b + y1
        steps += [{"text": f"I draw the vertical line at x = {x1} up to the line and across to the y-axis.",
                   "code": tool},
                  {"text": f"The value at x = {x1} is {y1}; {k} + {b} + {y1} = {_num(answer)}."}]
    elif variant == "sequential":
        question = (f"Let k be the answer of the previous problem, k = {_num(given or 0)}. The line passes through "
                    f"the marked points A and B. What is k plus the value of the line at x = {x1}?")
        answer = y1 + (given or 0)
        steps += [{"text": f"I draw the vertical line at x = {x1} up to the line and across to the y-axis.",
                   "code": tool},
                  {"text": f"The line is at y = {y1} there; adding k gives {_num(answer)}."}]
    else:
        question = f"The line passes through the marked points A and B. What is its value at x = {x1}?"
        answer = y1
        steps += [{"text": f"I draw the vertical line at x = {x1} up to the line and across to the y-axis.",
                   "code": tool},
                  {"text": f"It meets the y-axis at {y1}."}]
    return {"question": question, "image_code": code, "solution": steps, "answer": _num(answer),
            "points": {"A": list(A), "B": list(B)}}


def graph_degree(rng: random.Random, variant: str, given: float | None) -> dict[str, Any]:
    n = rng.randint(5, 7)
    names = "ABCDEFG"[:n]
    pos = {names[i]: (round(224 + 150 * math.cos(2 * math.pi * i / n - math.pi / 2)),
                      round(224 + 150 * math.sin(2 * math.pi * i / n - math.pi / 2))) for i in range(n)}
    pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    edges = sorted(rng.sample(pairs, rng.randint(n, min(len(pairs), n + 4))))
    degree = {v: sum(v in e for e in edges) for v in names}
    x = rng.choice(names)
    y = rng.choice([v for v in names if v != x])
    lines = [f"d.line([{pos[u]}, {pos[v]}], fill='black', width=2)" for u, v in edges]
    for v, (px_, py_) in pos.items():
        lines.append(f"d.ellipse([{px_ - 16}, {py_ - 16}, {px_ + 16}, {py_ + 16}], fill='white', outline='black', "
                     "width=2)")
        lines.append(f"d.text(({px_}, {py_}), '{v}', fill='black', font=font, anchor='mm')")
    code = _HEAD.format(w=448, h=448) + "\n".join(lines) + "\n" + _SAVE
    mark = [x] if variant != "parallel" else [x, y]
    tool = _TOOL_HEAD
    for v in mark:
        for u, w in edges:
            if v in (u, w):
                tool += f"d.line([{pos[u]}, {pos[w]}], fill='red', width=4)\n"
        px_, py_ = pos[v]
        tool += f"d.ellipse([{px_ - 22}, {py_ - 22}, {px_ + 22}, {py_ + 22}], outline='red', width=3)\n"
    tool += _TOOL_SAVE
    steps = [{"text": f"I highlight the edges that meet at {' and '.join(mark)}.", "code": tool}]
    if variant == "parallel":
        question = f"In the graph, what is the sum of the degrees of vertices {x} and {y}?"
        answer: float = degree[x] + degree[y]
        steps.append({"text": f"{x} has {degree[x]} red edges and {y} has {degree[y]}; the sum is {_num(answer)}."})
    elif variant == "sequential":
        question = (f"Let k be the answer of the previous problem, k = {_num(given or 0)}. In the graph, what is k "
                    f"plus the number of edges that meet at vertex {x}?")
        answer = degree[x] + (given or 0)
        steps.append({"text": f"{degree[x]} edges meet at {x}; adding k gives {_num(answer)}."})
    else:
        question = f"In the graph, how many edges meet at vertex {x}?"
        answer = degree[x]
        steps.append({"text": f"Counting the red edges gives {degree[x]}."})
    return {"question": question, "image_code": code, "solution": steps, "answer": _num(answer),
            "points": {v: list(p) for v, p in pos.items()}}


TEMPLATES: dict[str, Callable[[random.Random, str, float | None], dict[str, Any]]] = {
    "triangle": triangle, "bar_chart": bar_chart, "line_graph": line_graph, "graph": graph_degree,
}
_KEYWORDS = (
    ("bar_chart", ("statistic", "data", "probabil", "table", "chemistry", "biology", "chart")),
    ("graph", ("graph theory", "logic", "combinator", "maze", "flowchart", "spatial", "circuit", "geograph", "clock")),
    ("line_graph", ("function", "algebra", "analytic", "arithmetic", "physics", "trigonometr", "vector")),
)


def template_for(domain: str) -> str:
    domain = domain.lower()
    for name, words in _KEYWORDS:
        if any(w in domain for w in words):
            return name
    return "triangle"


def _digest(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def scripted_problem(text: str) -> tuple[dict[str, Any], str, str]:
    """(the correct problem for the task a prompt describes, the task id, the template name)."""
    blocks = json_blocks(text)
    points = blocks[0] if blocks and isinstance(blocks[0], list) else []
    task_id = field_after(text, "Task id:") or "?"
    variant = "parallel" if "(parallel expansion)" in text else "sequential" if "(sequential expansion)" in text \
        else "base"
    # A variant's base problem is the block after the knowledge points (a repair's failed problem comes later).
    base = blocks[1] if variant != "base" and len(blocks) > 1 and isinstance(blocks[1], dict) else None
    domain = str(points[0].get("path", "")).split(" > ")[0] if points and isinstance(points[0], dict) else ""
    name = template_for(domain)
    given = None
    if base is not None:
        try:
            given = float(base["answer"])
        except (TypeError, ValueError):
            given = 0.0
    rng = random.Random(_digest(task_id, json.dumps(points, sort_keys=True), variant))
    return TEMPLATES[name](rng, variant, given), task_id, name


def flaw_of(task_id: str) -> str | None:
    """How the demo's first draft of a task is flawed: ``crash``, ``wrong_answer``, ``blank`` (every draft)."""
    h = _digest("flaw", task_id)
    if h % 11 == 3:
        return "blank"
    return {1: "crash", 2: "wrong_answer"}.get(h % 6)


_MODIFIERS = ("with integer values", "on a coordinate grid", "in composite figures", "with a missing value",
              "under an extra constraint", "in a real-world setting", "across two figures", "with estimation",
              "worked backwards", "using symmetry")


class DemoResponder:
    """Answers the flywheel's four requests from templates (see the module docstring)."""

    def __call__(self, body: dict[str, Any]) -> ScriptedReply:
        text = request_text(body)
        kind = request_kind(text)
        if kind in (GENERATE, REPAIR):
            return ScriptedReply(json.dumps(self.problem(text, repair=kind == REPAIR)))
        if kind == CHECK:
            return ScriptedReply(json.dumps(self.verdict(text)))
        if kind == EVOLVE:
            return ScriptedReply(json.dumps(self.proposals(text)))
        return ScriptedReply(status=400, error="the scripted server only answers the flywheel's requests")

    def problem(self, text: str, repair: bool) -> dict[str, Any]:
        problem, task_id, _ = scripted_problem(text)
        flaw = flaw_of(task_id)
        if flaw == "blank":
            problem["image_code"] = ("from PIL import Image\n"
                                     "Image.new('RGB', (448, 448), 'white').save(processed_path)\n")
        elif flaw == "crash" and not repair:
            problem["image_code"] = problem["image_code"].replace("d = ImageDraw.Draw(img)\n", "")
        elif flaw == "wrong_answer" and not repair:
            problem["answer"] = str(int(float(problem["answer"])) + 1)
        return problem

    def verdict(self, text: str) -> dict[str, Any]:
        problem, _, _ = scripted_problem(text)
        given = field_after(text, "Given answer:")
        if given == problem["answer"]:
            return {"answer": problem["answer"], "consistent": True, "issues": [], "fix": "none"}
        return {"answer": problem["answer"], "consistent": False, "fix": "answer",
                "issues": [f"the figure gives {problem['answer']}, not {given}"]}

    def proposals(self, text: str) -> dict[str, Any]:
        blocks = json_blocks(text)
        point = blocks[0] if blocks and isinstance(blocks[0], dict) else {}
        path = str(point.get("path", "point")).split(" > ")
        name, parent = path[-1], path[-2] if len(path) > 1 else path[-1]
        rng = random.Random(_digest("evolve", point.get("id")))
        mods = rng.sample(_MODIFIERS, 5)
        # The first proposal repeats the point itself in other words: the graph refuses it as a duplicate.
        children = [{"name": f"The {name.upper()}S", "description": "a restatement"}]
        children += [{"name": f"{name} {m}", "description": f"{name}, {m}"} for m in mods[:3]]
        siblings = [{"name": f"{parent} {m}", "description": f"{parent}, {m}"} for m in mods[3:]]
        return {"children": children, "siblings": siblings}


# --------------------------------------------------------------------------- the HTTP server

class ScriptedServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 answering through ``responder``.

    ``latency_s`` is added to every reply (a simulated model); ``requests`` counts the requests and
    ``max_in_flight`` is the most handled at once. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, responder: Responder | None = None, latency_s: float = 0.0, port: int = 0) -> None:
        self.responder = responder or DemoResponder()
        self.latency_s = latency_s
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": SCRIPTED_MODEL, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    body = json.loads(raw or b"{}")
                    reply = server.responder(body)
                    time.sleep(server.latency_s + reply.delay)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.error or "scripted error",
                                                        "type": "server_error"}})
                    return
                self._send(200, {
                    "id": f"scripted-{server.requests}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", SCRIPTED_MODEL),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="scripted-llm")
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
