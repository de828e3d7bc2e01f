"""The flywheel's prompts (in this project's own words) and the chat messages built from them.

Four requests, each opened by a ``## Task: ...`` line naming it (:data:`TASK_LINES`): write a
problem, repair a problem, check a problem (the LMM checker, shown the images) and extend the
knowledge system. Knowledge points, base problems and previous attempts travel as fenced JSON
blocks, so that both a model and a program can read them back.
"""

from __future__ import annotations

import json
from typing import Any

from vthinker_plugins.flywheel.knowledge import MAX_LAYER, KnowledgeGraph
from vthinker_plugins.flywheel.tasks import Task
from vthinker_plugins.llm_client import image_part, text_part

GENERATE, REPAIR, CHECK = "write a problem", "repair a problem", "check a problem"
EVOLVE = "extend the knowledge system"
TASK_LINES = {name: f"## Task: {name}" for name in (GENERATE, REPAIR, CHECK, EVOLVE)}

PROBLEM_FORMAT = """\
{"question": "...", "image_code": "...",
 "solution": [{"text": "..."}, {"text": "...", "code": "..."}, {"text": "..."}],
 "answer": "...", "points": {"A": [x, y]}}"""

GENERATOR_SYSTEM = f"""\
You write training problems for a visual reasoning model that solves problems by writing Python \
code that draws on the image (auxiliary lines, marked points, highlighted regions, labels, crops).

A problem has:
1. a figure, drawn from scratch by a Python program (`image_code`);
2. a question that needs the figure to be answered;
3. a worked solution in steps, exactly one of which draws on the figure (its `code`): the \
construction or mark that makes the answer visible, followed by the reasoning it enables;
4. the final answer: short (a number, an expression, a letter or a few words), nothing else.

Code rules:
- Python 3 with PIL (Image, ImageDraw, ImageFont), numpy, matplotlib (Agg backend) and cv2; \
no network, no other files; each program must finish within a few seconds.
- `image_code` draws the figure and saves it as PNG to the path in the variable `processed_path`. \
Sides between 224 and 1024 pixels, light background, labels legible.
- The step `code` opens the figure from the path in the variable `image_path`, draws on it (or \
crops it), saves the result to `processed_path` and prints `processed_path`.
- Values the question relies on must be readable in the figure or stated in the question.

Reply with one JSON object and nothing else:
{PROBLEM_FORMAT}
`points` is optional: the pixel coordinates at which `image_code` draws its labelled points \
(used to teach the model where things are); leave it out when the figure has none."""

CHECKER_SYSTEM = """\
You review visual reasoning problems before they are used to train a model. You are shown the \
figure, the figure after the solution's drawing step, the question, the worked solution and the \
answer. You are strict: a problem with a wrong answer, an unreadable or mismatching figure, or an \
ambiguous question must not pass."""

CHECK_INSTRUCTIONS = """\
First solve the question yourself from the figure. Then check that:
1. the figure shows everything the question relies on, legibly, and agrees with the question \
(labels, values, relations);
2. the question has exactly one correct answer;
3. the drawing step does what the solution says it does, and helps;
4. the given answer is correct.
Reply with one JSON object and nothing else:
{"answer": "your own answer", "consistent": true, "issues": [], "fix": "none"}
with "consistent": false and the problems listed in "issues" when any check fails, and "fix" \
naming what to change: "image" (the figure code), "question", "solution" or "answer"."""

EVOLVE_SYSTEM = """\
You extend a knowledge system for visual reasoning problems: a tree of knowledge points \
(domain > topic > concept > finer points). Every point you propose must be something a problem \
with a figure can test, named in a few words, and not already present."""

_STRATEGY_TEXT = {
    "parallel": (
        "This is a harder variant (parallel expansion) of the base problem below: keep its kind of setting "
        "but combine it with the knowledge points marked new above, or add a constraint, so that solving it "
        "needs at least one more reasoning step than the base problem."
    ),
    "sequential": (
        "This is a follow-up (sequential expansion) of the base problem below, whose answer is {answer}. "
        "Write a new problem that takes that answer as a given, states it in the question, and builds on "
        "it (the figure may extend the earlier one), so that it needs the earlier result and at least one "
        "more step."
    ),
}


def json_block(value: Any) -> str:
    return "```json\n" + json.dumps(value, ensure_ascii=False, indent=1) + "\n```"


def knowledge_block(task: Task, graph: KnowledgeGraph) -> str:
    points = []
    for pid in task.points:
        entry = graph.describe(pid)
        if pid in task.new_points:
            entry["new"] = True
        points.append(entry)
    return json_block(points)


def task_text(task: Task, graph: KnowledgeGraph) -> str:
    """What every request about a task says: its knowledge points, level and strategy."""
    lines = [
        f"Task id: {task.id}",
        "Knowledge points (the problem must exercise them):",
        knowledge_block(task, graph),
        f"Difficulty level: {task.level} (1 = one idea; each level adds a reasoning step or a constraint).",
    ]
    if task.strategy in _STRATEGY_TEXT and task.base_problem is not None:
        lines.append(_STRATEGY_TEXT[task.strategy].format(answer=task.base_problem.get("answer")))
        lines.append("Base problem:\n" + json_block(task.base_problem))
    return "\n".join(lines)


def generate_messages(task: Task, graph: KnowledgeGraph) -> list[dict[str, Any]]:
    user = f"{TASK_LINES[GENERATE]}\n{task_text(task, graph)}\nReply with the problem as one JSON object."
    return [{"role": "system", "content": GENERATOR_SYSTEM}, {"role": "user", "content": user}]


def repair_messages(task: Task, graph: KnowledgeGraph, feedback: list[str], previous: dict[str, Any] | None,
                    raw: str | None, images: list[tuple[str, bytes]] | None = None) -> list[dict[str, Any]]:
    """Ask for a corrected problem: ``previous`` (the problem as read) or, when the reply could not be
    read, ``raw`` (its text); ``images``: (label, PNG) pairs of what the previous attempt drew."""
    lines = [TASK_LINES[REPAIR], task_text(task, graph)]
    if previous is not None:
        lines.append("The problem below failed review:\n" + json_block(previous))
    else:
        lines.append("Your previous reply could not be read as a problem. It began:\n```\n"
                     + (raw or "")[:3000] + "\n```")
    lines.append("Feedback:\n" + "\n".join(f"- {line}" for line in feedback))
    lines.append("Fix what the feedback names (the figure code, the question, the solution or the answer) and keep "
                 "the rest. Reply with the complete corrected problem as one JSON object, in the same format.")
    text = "\n".join(lines)
    content: Any = text
    if images:
        content = [text_part(text)]
        for label, png in images:
            content += [text_part(f"[{label}]"), image_part(png)]
    return [{"role": "system", "content": GENERATOR_SYSTEM}, {"role": "user", "content": content}]


def check_messages(task: Task, graph: KnowledgeGraph, problem: dict[str, Any], image: bytes,
                   edited: bytes) -> list[dict[str, Any]]:
    """The LMM checker's request: the figure, the figure after the drawing step, and the problem."""
    solution = "\n".join(
        f"{i}. {step.get('text', '')}" + (" [draws on the figure; result shown above]" if step.get("code") else "")
        for i, step in enumerate(problem["solution"], 1)
    )
    head = f"{TASK_LINES[CHECK]}\n{task_text(task, graph)}\n[Figure]"
    tail = (f"Question:\n{problem['question']}\n\nWorked solution:\n{solution}\n\nGiven answer: {problem['answer']}\n\n"
            f"{CHECK_INSTRUCTIONS}")
    content = [text_part(head), image_part(image), text_part("[Figure after the drawing step]"), image_part(edited),
               text_part(tail)]
    return [{"role": "system", "content": CHECKER_SYSTEM}, {"role": "user", "content": content}]


def evolve_messages(graph: KnowledgeGraph, pid: str, n_children: int, n_siblings: int) -> list[dict[str, Any]]:
    point = graph.points[pid]
    children = [p.name for p in graph.children(pid)]
    siblings = [p.name for p in graph.siblings(pid)]
    user = "\n".join([
        TASK_LINES[EVOLVE],
        "Knowledge point:",
        json_block(graph.describe(pid)),
        f"Its existing children: {json.dumps(children, ensure_ascii=False)}",
        f"Its existing siblings: {json.dumps(siblings, ensure_ascii=False)}",
        f"Propose up to {n_children} narrower points under it (children)"
        + (f" and up to {n_siblings} new points beside it under the same parent (siblings)" if n_siblings else "")
        + ", each testable by a problem with a figure and not already listed. Reply with one JSON object and "
          'nothing else: {"children": [{"name": "...", "description": "..."}], "siblings": [...]}',
    ])
    if point.layer >= MAX_LAYER:
        user += "\nThis point is at the deepest layer: propose siblings only."
    return [{"role": "system", "content": EVOLVE_SYSTEM}, {"role": "user", "content": user}]
