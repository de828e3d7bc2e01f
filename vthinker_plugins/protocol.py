"""The V-Thinker interaction protocol: prompts, tags, parsing and rendering.

Everything that decides what the model sees or what we read back from it lives
here, so that SFT data, RL rollouts and evaluation speak byte-identical text.
The prompts are written in this project's own words but describe the same
contract as the released V-Thinker checkpoint; users evaluating that checkpoint
can load the official prompt file instead (:meth:`PromptSet.from_files`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the sandbox is a leaf package; importing it only for types keeps start-up light
    from sandbox import CellResult

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
CODE_OPEN, CODE_CLOSE = "<code>", "</code>"
OBS_OPEN, OBS_CLOSE = "<sandbox_output>", "</sandbox_output>"
#: Placeholder for one image in prompt and observation text; backends expand it
#: into the model's own image tokens (LlamaFactory and lmms-eval use the same).
IMAGE_PLACEHOLDER = "<image>"

#: Generation pauses at these strings; the end-of-turn token is the backend's business.
STOP_STRINGS: tuple[str, ...] = (CODE_CLOSE, ANSWER_CLOSE)

#: Longest text an observation may carry back to the model (stdout or an error).
MAX_OBSERVATION_CHARS = 1500

DEFAULT_SYSTEM_PROMPT = """\
You are a visual reasoning assistant that thinks with images. While you reason you may \
write Python code that draws on or edits the image (auxiliary lines, marked points, \
labels, highlighted regions, crops, zoom-ins) so that you can see the problem better.

How code works:
- Wrap every program like this:
<code>
```python
# your code
```
</code>
- The path of the input image is in the variable `image_path`. Save the image you \
produce to the path in `processed_path` and print it with `print(processed_path)`.
- Code runs in an external sandbox, each block in a fresh Python process, with PIL, \
numpy, cv2, matplotlib and math available. The processed image (or the printed text, \
or the error) is returned to you between <sandbox_output> and </sandbox_output>, \
and you continue reasoning from it.

Output format: put all of your reasoning, including any code, inside <think> </think>, \
then give only the final answer inside <answer> </answer>."""

DEFAULT_USER_TEMPLATE = """\
{images}{question}

The path of the input image is stored in the variable `image_path`.
Output format: <think>your reasoning, with code if it helps</think><answer>final answer</answer>"""


@dataclass(frozen=True)
class PromptSet:
    """The system prompt and the user-turn template (``{images}`` and ``{question}`` fields)."""

    system: str = DEFAULT_SYSTEM_PROMPT
    user_template: str = DEFAULT_USER_TEMPLATE

    @classmethod
    def from_files(cls, system_file: str | Path | None = None, user_file: str | Path | None = None) -> PromptSet:
        """Load prompts from text files, e.g. the official ``data/prompt.txt`` of V-Thinker as system prompt."""
        system = Path(system_file).read_text(encoding="utf-8").strip() if system_file else DEFAULT_SYSTEM_PROMPT
        user = Path(user_file).read_text(encoding="utf-8") if user_file else DEFAULT_USER_TEMPLATE
        if "{question}" not in user:
            raise ValueError(f"user prompt template {user_file} has no '{{question}}' field")
        return cls(system=system, user_template=user)

    def user_prompt(self, question: str, n_images: int = 1) -> str:
        """The user turn: one image placeholder per input image, then the question."""
        question = question.strip()
        # Benchmarks such as MathVision mark images inline (<image1>); the placeholders
        # we put in front already carry the images, so the inline marks are dropped.
        question = re.sub(r"\s*<image\d+>\s*", "\n", question).strip()
        images = IMAGE_PLACEHOLDER * n_images + ("\n" if n_images else "")
        return self.user_template.replace("{images}", images).replace("{question}", question)


DEFAULT_PROMPTS = PromptSet()


# --------------------------------------------------------------------------- parsing

@dataclass(frozen=True)
class CodeBlock:
    """One ``<code>`` block found in model output."""

    code: str
    start: int  # offset of "<code>" in the text
    end: int  # offset just after "</code>" (or end of text when unclosed)
    closed: bool
    style: str  # "backtick", "quote" or "bare"


_FENCES = {"backtick": "```", "quote": "'''"}
_FENCE_RES = {
    style: re.compile(mark + r"[ \t]*(?:python3|python|py)?[ \t]*\n?(.*?)(?:" + mark + r"|\Z)", re.S | re.I)
    for style, mark in _FENCES.items()
}


def _strip_fence(body: str) -> tuple[str, str]:
    stripped = body.strip()
    for style, mark in _FENCES.items():
        if stripped.startswith(mark):
            match = _FENCE_RES[style].match(stripped)
            if match:
                return match.group(1).strip("\n"), style
    return stripped, "bare"


def parse_code_blocks(text: str) -> list[CodeBlock]:
    """All code blocks in order; the last one may be unclosed (generation stopped inside it)."""
    blocks: list[CodeBlock] = []
    pos = 0
    while True:
        start = text.find(CODE_OPEN, pos)
        if start < 0:
            return blocks
        body_start = start + len(CODE_OPEN)
        close = text.find(CODE_CLOSE, body_start)
        closed = close >= 0
        body_end = close if closed else len(text)
        code, style = _strip_fence(text[body_start:body_end])
        end = close + len(CODE_CLOSE) if closed else len(text)
        blocks.append(CodeBlock(code=code, start=start, end=end, closed=closed, style=style))
        pos = end


def pending_code(segment: str) -> CodeBlock | None:
    """The code block to execute after a generation step: the last block, if it is closed and
    nothing but whitespace follows it (generation stopped at ``</code>``)."""
    blocks = parse_code_blocks(segment)
    if not blocks:
        return None
    last = blocks[-1]
    if not last.closed or segment[last.end:].strip() or not last.code.strip():
        return None
    return last


_ANSWER_RE = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)(?:" + re.escape(ANSWER_CLOSE) + r"|\Z)", re.S)


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces."""
    idx = text.rfind("\\boxed")
    while idx >= 0:
        brace = text.find("{", idx)
        if brace >= 0 and not text[idx + len("\\boxed"):brace].strip():
            depth = 0
            for i in range(brace, len(text)):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[brace + 1:i].strip()
        idx = text.rfind("\\boxed", 0, idx)
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last ``<answer>`` block (outside observations), else the last
    ``\\boxed{}``; ``None`` when the model gave neither."""
    visible = strip_observations(text)
    answers = _ANSWER_RE.findall(visible)
    if answers:
        answer = answers[-1].strip()
        boxed = _last_boxed(answer)
        return boxed if boxed is not None else answer
    return _last_boxed(visible)


def strip_observations(text: str) -> str:
    """The text with every ``<sandbox_output>...</sandbox_output>`` removed (what the model wrote)."""
    return re.sub(re.escape(OBS_OPEN) + r".*?(?:" + re.escape(OBS_CLOSE) + r"|\Z)", "", text, flags=re.S)


@dataclass(frozen=True)
class FormatCheck:
    ok: bool
    reason: str = ""


_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def check_format(text: str) -> FormatCheck:
    """Exactly one ``<think>...</think>`` followed by exactly one ``<answer>...</answer>`` and
    nothing else outside them (observations are ignored; they are not the model's text)."""
    visible = strip_observations(text)
    counts = {tag: visible.count(tag) for tag in _TAGS}
    for tag, n in counts.items():
        if n != 1:
            return FormatCheck(False, f"{tag} occurs {n} times, expected once")
    match = re.fullmatch(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", visible, re.S)
    if not match:
        return FormatCheck(False, "expected <think>...</think> then <answer>...</answer> with nothing around them")
    if not match.group(2).strip():
        return FormatCheck(False, "empty answer")
    return FormatCheck(True)


# --------------------------------------------------------------------------- rendering

def observation_text(body: str) -> str:
    """Wrap an observation body exactly as it appears in the assistant turn."""
    return f"\n{OBS_OPEN}{body}{OBS_CLOSE}\n"


#: Tags that printed output must not smuggle into the conversation: a printed "<image>" would
#: claim an image that does not exist, a printed "</sandbox_output>" would end the observation early.
_NEUTRALISED = {IMAGE_PLACEHOLDER: "[image]", OBS_OPEN: "[sandbox_output]", OBS_CLOSE: "[/sandbox_output]"}


def _clip(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    text = text.strip()
    for tag, replacement in _NEUTRALISED.items():
        text = text.replace(tag, replacement)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


def describe_error(result: CellResult) -> str:
    """A short, useful error for the model: status, exception and the user-code frames."""
    status = getattr(result.status, "value", result.status)
    if result.error is not None:
        lines = [*result.error.traceback[-4:], f"{result.error.type}: {result.error.message}"]
        return "Error: " + _clip("\n".join(line.rstrip() for line in lines if line.strip()))
    if status == "timeout":
        return "Error: the code ran past its time limit and was stopped."
    if status == "limit_exceeded":
        return "Error: the code exceeded a resource limit (memory, file size or output) and was stopped."
    if status == "killed":
        return "Error: the code was killed (crash or forbidden operation)."
    return "Error: " + _clip(result.stderr or status)


def render_observation(result: CellResult, images_left: int) -> tuple[str, int]:
    """Render a sandbox result into the assistant turn.

    Returns the observation text and how many of ``result.images`` it shows (one
    :data:`IMAGE_PLACEHOLDER` each, in order). Images beyond ``images_left`` are not
    shown; the model is told so instead of silently losing them.
    """
    status = getattr(result.status, "value", result.status)
    if status != "ok":
        return observation_text(describe_error(result)), 0
    n_images = len(result.images)
    if n_images == 0:
        text = _clip(result.stdout) or "(the code ran and printed nothing, and produced no image)"
        return observation_text(text), 0
    shown = max(0, min(n_images, images_left))
    body = IMAGE_PLACEHOLDER * shown
    if shown < n_images:
        body += f"[{n_images - shown} image(s) not shown: image limit for this conversation reached]"
    return observation_text(body), shown

