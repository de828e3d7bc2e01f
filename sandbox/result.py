"""Result types returned to callers: plain dataclasses, JSON round-trippable."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class CellStatus(str, Enum):  # noqa: UP042 - the documented API is (str, Enum)
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    KILLED = "killed"
    LIMIT_EXCEEDED = "limit_exceeded"


@dataclass
class CellError:
    type: str
    message: str
    traceback: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass
class OutputImage:
    name: str
    png: bytes
    width: int
    height: int


@dataclass
class CellResult:
    status: CellStatus
    stdout: str = ""
    stderr: str = ""
    error: CellError | None = None
    images: list[OutputImage] = field(default_factory=list)
    wall_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status == CellStatus.OK

    def to_dict(self, include_images: bool = True) -> dict[str, Any]:
        images: list[dict[str, Any]] = []
        for im in self.images:
            d: dict[str, Any] = {"name": im.name, "width": im.width, "height": im.height}
            if include_images:
                d["png_b64"] = base64.b64encode(im.png).decode("ascii")
            images.append(d)
        return {
            "status": self.status.value,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": None if self.error is None else {"type": self.error.type, "message": self.error.message,
                                                      "traceback": list(self.error.traceback)},
            "images": images,
            "wall_s": self.wall_s,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        err = d.get("error")
        return cls(
            status=CellStatus(d["status"]),
            stdout=d.get("stdout", ""),
            stderr=d.get("stderr", ""),
            error=None if err is None else CellError(err["type"], err["message"],
                                                     list(err.get("traceback", []))),
            images=[OutputImage(i["name"], base64.b64decode(i["png_b64"]) if "png_b64" in i else b"",
                                int(i["width"]), int(i["height"])) for i in d.get("images", [])],
            wall_s=float(d.get("wall_s", 0.0)),
            truncated=bool(d.get("truncated", False)),
        )
