"""V-Interaction-400K rows -> stage-2 samples in V-Thinker's in-turn format.

:func:`convert_row` rewrites a row's reasoning text and tool image into exactly the assistant text
the interaction loop produces at inference, split into assistant / observation messages for
LlamaFactory (observations masked from the labels). Rows whose text and images disagree raise
:class:`RowExcluded` with a reason code; none is dropped silently.

Design notes (row schema, rendering): docs/data.md.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from vthinker_plugins.data.lengths import LengthCounter
from vthinker_plugins.protocol import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CODE_CLOSE,
    CODE_OPEN,
    DEFAULT_PROMPTS,
    IMAGE_PLACEHOLDER,
    OBS_CLOSE,
    OBS_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    PromptSet,
    check_format,
    observation_text,
    parse_code_blocks,
)

#: The hub dataset and its 25 splits.
HUB_ID = "We-Math/V-Interaction-400K"
HUB_SPLITS = tuple(f"train_part{i}" for i in range(1, 26))
COLUMNS = ("id", "question", "image", "original_img_code", "edited_image", "tool_code", "CoT_with_code", "answer")
IMAGE_COLUMNS = ("image", "edited_image")


def hub_features():
    """The hub's column types (images embedded as ``{"bytes", "path"}``), for writing rows in its schema."""
    import datasets

    return datasets.Features({c: datasets.Image() if c in IMAGE_COLUMNS else datasets.Value("string")
                              for c in COLUMNS})


class RowExcluded(Exception):  # a control-flow signal, not an error of the program
    """A row that cannot become a training sample; ``reason`` is a short code for the summary."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class ImageBlob:
    """An encoded image ready to be written next to the sharegpt data."""

    data: bytes
    ext: str  # "png", "jpg", ...
    width: int
    height: int


@dataclass
class ConvertedRow:
    """One sharegpt sample: messages (system first) and its images in placeholder order."""

    id: str
    messages: list[dict[str, str]]
    images: list[ImageBlob]
    extra: dict[str, Any]


_FORMAT_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


def image_blob(value: Any, field: str, base_dir: str | None = None) -> ImageBlob:
    """Check that ``value`` decodes to an image and keep its original bytes when possible
    (re-encoding every image would cost most of the conversion time)."""
    if value is None or (isinstance(value, dict) and not value.get("bytes") and not value.get("path")):
        raise RowExcluded(f"missing_{field}", f"{field} is empty")
    raw: bytes | None = None
    if isinstance(value, dict) and value.get("bytes"):
        raw = bytes(value["bytes"])
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    try:
        if raw is None:
            from vthinker_plugins.data.sources import to_image

            pil = to_image(value, base_dir, where=field)
            buf = io.BytesIO()
            pil.save(buf, format="PNG")
            return ImageBlob(buf.getvalue(), "png", pil.width, pil.height)
        with Image.open(io.BytesIO(raw)) as im:
            fmt = im.format or ""
            width, height = im.size
            if fmt == "PNG":
                # Chunk structure and CRCs (catches truncation and corruption) at a fraction of a decode.
                im.verify()
                return ImageBlob(raw, "png", width, height)
            im.load()  # other formats: a full decode, so broken files fail here, not in the trainer
            if fmt in _FORMAT_EXT and im.mode in ("RGB", "L", "RGBA", "P", "LA"):
                return ImageBlob(raw, _FORMAT_EXT[fmt], width, height)
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
            return ImageBlob(buf.getvalue(), "png", width, height)
    except RowExcluded:
        raise
    except Exception as exc:  # any decoder failure is a property of the row
        raise RowExcluded(f"undecodable_{field}", f"{type(exc).__name__}: {exc}") from exc


def format_code_block(code: str) -> str:
    """The canonical code block the system prompt teaches (backtick fence inside ``<code>``)."""
    return f"{CODE_OPEN}\n```python\n{code.strip(chr(10))}\n```\n{CODE_CLOSE}"


_OBS_RE = re.compile(re.escape(OBS_OPEN) + r".*?" + re.escape(OBS_CLOSE), re.S)


def assistant_segments(cot: str, answer: str | None, n_tool_images: int) -> list[str]:
    """Split a CoT_with_code text into alternating model text / observation segments.

    Returns ``[text_0, obs_0, text_1, obs_1, ..., text_n]`` whose concatenation is the
    assistant turn. Code fences are normalised to :func:`format_code_block`; any sandbox
    output already present in the text is replaced by the canonical observation; the
    answer is appended as ``<answer>`` when the text has none; the whole turn is wrapped
    in ``<think>`` when it has no think tag.
    """
    cot = (cot or "").strip()
    if not cot:
        raise RowExcluded("missing_cot", "CoT_with_code is empty")
    # Observations the data may already carry are re-rendered; what matters is the code.
    cot = _OBS_RE.sub("", cot)
    if OBS_OPEN in cot or OBS_CLOSE in cot:
        raise RowExcluded("unbalanced_sandbox_output", "unmatched <sandbox_output> tag")
    if IMAGE_PLACEHOLDER in cot:
        raise RowExcluded("placeholder_count_mismatch", "an <image> placeholder occurs in the model's own text")
    blocks = parse_code_blocks(cot)
    if any(not b.closed for b in blocks):
        raise RowExcluded("unclosed_code_block", "a <code> block has no </code>")
    if any(not b.code.strip() for b in blocks):
        raise RowExcluded("empty_code_block", "a <code> block holds no code")
    if len(blocks) != n_tool_images:
        raise RowExcluded(
            "placeholder_count_mismatch",
            f"{len(blocks)} code block(s) but {n_tool_images} edited image(s)",
        )

    has_answer = ANSWER_OPEN in cot
    if not has_answer and not (answer or "").strip():
        raise RowExcluded("missing_answer", "neither an <answer> in CoT_with_code nor an answer column")
    has_think = THINK_OPEN in cot
    texts: list[str] = []
    pos = 0
    for block in blocks:
        before = cot[pos:block.start]
        # The observation already ends in a newline; the model's text resumes right after it.
        if texts:
            before = before.lstrip()
        texts.append(before + format_code_block(block.code))
        pos = block.end
    tail = cot[pos:]
    tail = tail.lstrip() if blocks else tail
    if not has_answer:
        close = "" if THINK_CLOSE in cot else THINK_CLOSE
        tail = tail.rstrip() + close + ANSWER_OPEN + answer.strip() + ANSWER_CLOSE
    elif THINK_CLOSE not in cot:
        # Reasoning followed directly by <answer>: close the think block right before it.
        idx = tail.rfind(ANSWER_OPEN)
        tail = tail[:idx].rstrip() + THINK_CLOSE + tail[idx:]
    texts.append(tail)
    if not has_think:
        texts[0] = THINK_OPEN + texts[0]

    segments: list[str] = []
    obs = observation_text(IMAGE_PLACEHOLDER)
    for i, text in enumerate(texts):
        segments.append(text)
        if i < len(texts) - 1:
            segments.append(obs)
    check = check_format("".join(segments))
    if not check.ok:
        raise RowExcluded("bad_format", check.reason)
    return segments


def trajectory_text(segments: Sequence[str]) -> str:
    """The assistant turn as the interaction loop renders it."""
    return "".join(segments)


def convert_row(
    row: dict[str, Any],
    prompts: PromptSet = DEFAULT_PROMPTS,
    base_dir: str | None = None,
) -> ConvertedRow:
    """One V-Interaction row -> a stage-2 sharegpt sample (raises :class:`RowExcluded`)."""
    row_id = str(row.get("id") if row.get("id") is not None else "")
    if not row_id:
        raise RowExcluded("missing_id", "row has no id")
    question = (row.get("question") or "").strip()
    if not question:
        raise RowExcluded("missing_question", "question is empty")
    if IMAGE_PLACEHOLDER in question:
        raise RowExcluded("placeholder_count_mismatch", "the question itself contains an <image> placeholder")
    image = image_blob(row.get("image"), "image", base_dir)
    edited = image_blob(row.get("edited_image"), "edited_image", base_dir)
    segments = assistant_segments(row.get("CoT_with_code") or "", row.get("answer"), n_tool_images=1)
    user = prompts.user_prompt(question, 1)
    n_placeholders = user.count(IMAGE_PLACEHOLDER) + trajectory_text(segments).count(IMAGE_PLACEHOLDER)
    if n_placeholders != 2:  # one input image + one edited image
        raise RowExcluded("placeholder_count_mismatch", f"{n_placeholders} <image> placeholders for 2 images")
    messages = [{"role": "system", "content": prompts.system}, {"role": "user", "content": user}]
    for i, segment in enumerate(segments):
        messages.append({"role": "assistant" if i % 2 == 0 else "observation", "content": segment})
    return ConvertedRow(
        id=row_id,
        messages=messages,
        images=[image, edited],
        extra={"answer": str(row.get("answer") or ""), "tool_code": row.get("tool_code") or ""},
    )


def image_difference(a: bytes, b: bytes) -> float | None:
    """Mean absolute RGB difference in [0, 1]; ``None`` when the sizes differ."""
    import numpy as np

    with Image.open(io.BytesIO(a)) as ia, Image.open(io.BytesIO(b)) as ib:
        if ia.size != ib.size:
            return None
        xa = np.asarray(ia.convert("RGB"), dtype=np.int16)
        xb = np.asarray(ib.convert("RGB"), dtype=np.int16)
    return float(np.abs(xa - xb).mean() / 255.0)


def verify_tool_code(
    rows: Sequence[dict[str, Any]],
    results: list[ConvertedRow | RowExcluded],
    tolerance: float = 0.03,
    timeout: float | None = None,
) -> list[ConvertedRow | RowExcluded]:
    """Re-execute each converted row's ``tool_code`` on its image in the sandbox and compare the
    image it produces with the stored ``edited_image`` (V-Thinker's "tool correctness" check).

    Rows whose code fails, produces no image, or produces a different image (mean absolute
    pixel difference above ``tolerance``) become :class:`RowExcluded`.
    """
    from sandbox import get_sandbox

    todo: list[int] = []
    jobs: list[tuple[str, list[bytes]]] = []
    out = list(results)
    for i, (row, result) in enumerate(zip(rows, results, strict=True)):
        if isinstance(result, RowExcluded):
            continue
        code = (row.get("tool_code") or "").strip()
        if not code:
            out[i] = RowExcluded("missing_tool_code", "verification needs tool_code")
            continue
        todo.append(i)
        jobs.append((code, [result.images[0].data]))
    if not jobs:
        return out
    if timeout:
        from sandbox import SandboxConfig

        sandbox = get_sandbox(SandboxConfig(wall_time_s=timeout))
    else:
        sandbox = get_sandbox()
    cells = sandbox.run_batch(jobs)
    for i, cell in zip(todo, cells, strict=True):
        result = out[i]
        assert isinstance(result, ConvertedRow)
        status = getattr(cell.status, "value", cell.status)
        if status != "ok":
            err = f"{cell.error.type}: {cell.error.message}" if cell.error else (cell.stderr or "")[-300:]
            out[i] = RowExcluded("tool_code_failed", f"{status}: {err}".strip())
        elif not cell.images:
            out[i] = RowExcluded("tool_code_no_image", "the tool code ran but produced no image")
        else:
            diff = image_difference(cell.images[0].png, result.images[1].data)
            if diff is None:
                produced = f"{cell.images[0].width}x{cell.images[0].height}"
                stored = f"{result.images[1].width}x{result.images[1].height}"
                out[i] = RowExcluded("edited_image_mismatch", f"produced {produced}, stored {stored}")
            elif diff > tolerance:
                out[i] = RowExcluded("edited_image_mismatch", f"mean abs pixel difference {diff:.4f} > {tolerance}")
    return out


def check_length(result: ConvertedRow, lengths: LengthCounter, cutoff_len: int) -> ConvertedRow:
    """Record the sample's token count (``n_tokens``) as LlamaFactory will count it; raise ``too_long``
    when it exceeds ``cutoff_len`` (LlamaFactory would truncate it through its image tokens)."""
    n_tokens = lengths.count(result.messages, [(blob.width, blob.height) for blob in result.images])
    if n_tokens > cutoff_len:
        raise RowExcluded("too_long", f"{n_tokens} tokens (text + images) > cutoff_len {cutoff_len}")
    result.extra["n_tokens"] = n_tokens
    return result


@dataclass
class InteractionConverter:
    """Batch converter for :func:`vthinker_plugins.data.sharegpt.convert` (picklable for worker processes).

    With ``lengths`` and ``cutoff_len``, samples longer than ``cutoff_len`` tokens are excluded
    (``too_long``) before the (slower) ``verify`` step.
    """

    prompts: PromptSet = DEFAULT_PROMPTS
    base_dir: str | None = None
    verify: bool = False
    tolerance: float = 0.03
    timeout: float | None = None
    lengths: LengthCounter | None = None
    cutoff_len: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> list[ConvertedRow | RowExcluded]:
        results: list[ConvertedRow | RowExcluded] = []
        for row in rows:
            try:
                result = convert_row(row, self.prompts, self.base_dir)
                if self.lengths is not None and self.cutoff_len is not None:
                    result = check_length(result, self.lengths, self.cutoff_len)
                results.append(result)
            except RowExcluded as exc:
                results.append(exc)
        if self.verify:
            results = verify_tool_code(rows, results, self.tolerance, self.timeout)
        return results
