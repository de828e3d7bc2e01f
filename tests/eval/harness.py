"""Helpers of the harness tests: the scripted rounds and a subprocess runner (the fake judge and API
models are the suite's one fake OpenAI server, tests/fake_openai.py)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: Round 1 draws on the input image (a real sandbox cell producing an image); round 2 answers.
DRAW_ROUND = (
    "<think>I mark the figure.\n<code>\n```python\nfrom PIL import Image, ImageDraw\n"
    "img = Image.open(image_path).convert('RGB')\ndraw = ImageDraw.Draw(img)\n"
    "draw.line((10, 10, 120, 90), fill='red', width=4)\nimg.save(processed_path)\nprint(processed_path)\n"
    "```\n</code>"
)
ANSWER_ROUND = "\nThe drawing shows it.</think><answer>{answer}</answer>"


def code_round(code: str) -> str:
    """A scripted round running ``code`` (the reference tool code of a VTBench item: the right drawing)."""
    return f"<think>I mark the figure.\n<code>\n```python\n{code.strip()}\n```\n</code>"


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
