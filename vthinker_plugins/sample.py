"""A benchmark or training item in the one shape the interaction loop consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class Sample:
    """One question about one or more images.

    ``task`` names the scoring rule (e.g. ``mathvision``, ``vtbench_reasoning``);
    ``meta`` keeps everything else a scorer or report needs (level, subject,
    ground-truth annotation image, reference tool code, ...).
    """

    id: str
    question: str
    images: list[Image.Image]
    answer: str | None = None
    options: list[str] = field(default_factory=list)
    task: str = "generic"
    max_rounds: int | None = None  # per-task override of the loop's round limit
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError(f"sample {self.id!r} has no image")
        self.id = str(self.id)
