"""Turning caller-supplied images (bytes, paths, PIL images) into read-only files in a cell's input folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import Any, Union

InputImage = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", Any]  # Any: PIL.Image.Image

_MAGIC = [(b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")]


def _ext_for(head: bytes) -> str:
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def write_inputs(images: Sequence[InputImage], in_dir: str, prefix: str = "") -> list[str]:
    """Write each image into in_dir (mode 0444) and return the file names, in order."""
    names: list[str] = []
    for k, img in enumerate(images, 1):
        stem = f"{prefix}image_{k}"
        if isinstance(img, (bytes, bytearray, memoryview)):
            data = bytes(img)
            name = stem + _ext_for(data[:16])
            with open(os.path.join(in_dir, name), "wb") as f:
                f.write(data)
        elif isinstance(img, (str, os.PathLike)):
            src = os.fspath(img)
            with open(src, "rb") as f:
                head = f.read(16)
            ext = os.path.splitext(src)[1].lower() or _ext_for(head)
            name = stem + (ext if len(ext) <= 6 and ext[1:].isalnum() else _ext_for(head))
            shutil.copyfile(src, os.path.join(in_dir, name))
        elif hasattr(img, "save") and hasattr(img, "size"):
            name = stem + ".png"
            img.save(os.path.join(in_dir, name), format="PNG", compress_level=1)
        else:
            raise TypeError(f"unsupported input image type: {type(img).__name__}")
        os.chmod(os.path.join(in_dir, name), 0o444)
        names.append(name)
    return names
