"""Write a finished trajectory to disk (its JSON summary and every image the sandbox produced)
and read it back.

Both harness adapters (lmms-eval, VLMEvalKit) keep each sample's generated images
beside their result files and reference them from the logged samples; scoring
reads them back from here. One folder per trajectory::

    <root>/<safe key>/trajectory.json
    <root>/<safe key>/round1_image1.png ...
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.loop import Trajectory

RECORD_FILE = "trajectory.json"


def safe_name(key: str) -> str:
    """A file-system-safe, collision-free folder name for ``key`` (readable prefix + short hash)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("._")[:80] or "sample"
    return f"{readable}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"


def _atomic_write_text(path: Path, text: str) -> None:
    # Written as it goes and read back on resume: never leave a half-written file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_trajectory(trajectory: Trajectory, folder: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the sandbox images of ``trajectory`` as PNG files and its summary as ``trajectory.json``.

    Every image a cell produced is written, in order (also those beyond the model's
    image limit, which scorers may still want). Returns the record that was written:
    ``trajectory.summary()`` plus ``generated_images`` (absolute paths), ``record``
    (path of the JSON file) and ``extra``.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for r, rnd in enumerate(trajectory.rounds, 1):
        if rnd.result is None:
            continue
        for i, image in enumerate(rnd.result.images, 1):
            path = folder / f"round{r}_image{i}.png"
            path.write_bytes(image.png)
            paths.append(str(path))
    record = trajectory.summary()
    record["generated_images"] = paths
    record["record"] = str(folder / RECORD_FILE)
    if extra:
        record.update(extra)
    _atomic_write_text(folder / RECORD_FILE, json.dumps(record, ensure_ascii=False, indent=1, default=str))
    return record


def load_record(folder: str | Path) -> dict[str, Any] | None:
    """The record written by :func:`save_trajectory`, or ``None`` when there is none."""
    path = Path(folder) / RECORD_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt trajectory record ({exc}); delete it to regenerate the sample") from exc


def load_images(paths: list[str]) -> list[Image.Image]:
    """Open the generated images of a record (RGB), failing with the missing path named."""
    images = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"generated image {path} referenced by a trajectory record is missing")
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images
