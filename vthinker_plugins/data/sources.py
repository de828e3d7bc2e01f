"""Open a dataset from wherever the user has it, and decode its images.

One source string covers the three places data lives:
- a Hugging Face hub id (``We-Math/VTBench``), when the machine can reach the hub;
- a local parquet / jsonl / json / csv / tsv file (VLMEvalKit's TSVs included), or a folder of them;
- a folder written by ``datasets.Dataset.save_to_disk``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

_EXT_BUILDER = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv",
                ".arrow": "arrow"}


class DataError(ValueError):
    """Bad input data; the message names the source, row and field."""


def is_local(source: str | Path) -> bool:
    return Path(source).expanduser().exists()


#: File and folder names that say which split a data file holds (hub layouts, MATH-V's test/testmini).
_SPLIT_NAME_RE = re.compile(r"(train|test|testmini|validation|val|dev|train_part\d+|v_perception_40k)")


def _split_of(file: Path, root: Path) -> str | None:
    """The split a data file under ``root`` is named after (``test.jsonl``,
    ``testmini-00000-of-00001.parquet``, ``train/part-0.parquet``), or ``None`` for other names."""
    for name in (file.stem, file.stem.split("-", 1)[0], *file.relative_to(root).parts[:-1]):
        if _SPLIT_NAME_RE.fullmatch(name):
            return name
    return None


def _data_files(path: Path, split: str | None) -> tuple[str, list[str]]:
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix in _EXT_BUILDER and p.is_file())
        if split is not None:
            # Prefer files named after the split (test.jsonl, train_part1-*.parquet, ...).
            named = [p for p in files if p.stem == split or p.stem.startswith(f"{split}-") or p.parent.name == split]
            other = sorted({s for p in files if (s := _split_of(p, path)) is not None and s != split})
            if not named and other:  # e.g. only testmini.jsonl: never serve it as the test split
                raise DataError(f"{path}: no file for split {split!r}; the files are of split(s) {other}: "
                                f"{sorted(p.name for p in files)[:10]}")
            files = named or files
        if not files:
            raise DataError(f"{path}: no parquet/jsonl/json/csv/arrow files found")
    builders = {_EXT_BUILDER.get(p.suffix) for p in files}
    if None in builders or len(builders) != 1 or len({p.suffix for p in files} & {".csv", ".tsv"}) > 1:
        raise DataError(f"{path}: mixed or unsupported file types {sorted(p.suffix for p in files)}")
    return builders.pop(), [str(p) for p in files]


def load_rows(source: str | Path, split: str | None = None, *, streaming: bool = False, **kwargs: Any):
    """A ``datasets.Dataset`` (or ``IterableDataset`` when streaming) for ``source``."""
    import datasets

    path = Path(source).expanduser()
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split is None:
                if len(loaded) != 1:
                    raise DataError(f"{path}: several splits {list(loaded)}; choose one")
                split = next(iter(loaded))
            if split not in loaded:
                raise DataError(f"{path}: no split {split!r}; available: {list(loaded)}")
            loaded = loaded[split]
        return loaded.to_iterable_dataset() if streaming else loaded
    if path.exists():
        builder, files = _data_files(path, split)
        if files[0].endswith(".tsv"):
            # VLMEvalKit's TSVs: tab-separated, cells read as text (an "NA" answer stays "NA").
            kwargs = {"delimiter": "\t", "keep_default_na": False, **kwargs}
        return datasets.load_dataset(builder, data_files=files, split="train", streaming=streaming, **kwargs)
    if "/" not in str(source) or str(source).startswith((".", "/", "~")):
        raise DataError(f"{source}: no such file or folder (and not a hub id like 'We-Math/VTBench')")
    return datasets.load_dataset(str(source), split=split or "train", streaming=streaming, **kwargs)


def to_image(value: Any, base_dir: str | Path | None = None, *, where: str = "image") -> Image.Image:
    """Decode an image from any form datasets hand out: a PIL image, the hub's
    ``{"bytes", "path"}`` struct, raw bytes, or a path (relative to ``base_dir``)."""
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        if value.get("bytes"):
            image = Image.open(io.BytesIO(value["bytes"]))
        else:
            return to_image(value["path"], base_dir, where=where)
    elif isinstance(value, (bytes, bytearray)):
        image = Image.open(io.BytesIO(value))
    elif isinstance(value, str) and (encoded := _base64_bytes(value)) is not None:
        image = Image.open(io.BytesIO(encoded))  # VLMEvalKit's TSV image cells
    elif isinstance(value, (str, Path)) and str(value):
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.exists():
            raise DataError(f"{where}: image file {path} does not exist")
        image = Image.open(path)
    else:
        raise DataError(f"{where}: no image (got {type(value).__name__})")
    try:
        image.load()
    except OSError as exc:
        raise DataError(f"{where}: cannot decode image: {exc}") from exc
    return image.convert("RGB") if image.mode not in ("RGB", "L") else image


_BASE64_RE = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
#: Leading bytes of the image formats a TSV carries (PNG, JPEG, GIF, WebP/RIFF, BMP).
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM")


def _base64_bytes(value: str) -> bytes | None:
    """The image bytes of a base64 string (a long run of base64 characters decoding to a known image
    header), ``None`` for anything else (a path)."""
    text = value.strip()
    if len(text) < 64 or not _BASE64_RE.fullmatch(text):
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_IMAGE_MAGIC) else None


def image_to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def take(rows: Iterable[dict[str, Any]], limit: int | None) -> Iterable[dict[str, Any]]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row
