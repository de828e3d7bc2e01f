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


class DataUnavailable(DataError):
    """The data cannot be had: the hub is unreachable, or offline mode is on and it is not cached."""


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


def load_rows(source: str | Path, split: str | None = None, *, streaming: bool = False, local_hint: str = "",
              **kwargs: Any):
    """A ``datasets.Dataset`` (or ``IterableDataset`` when streaming) for ``source``.

    A local file ``datasets`` cannot read is a :class:`DataError` naming the file and line (JSON lines) or
    the reader's own account. A hub id is loaded only when the hub answers a quick probe
    (:mod:`vthinker_plugins.hub`); otherwise, or when offline mode finds no cached copy, it is a
    :class:`DataUnavailable` ending in ``local_hint`` (how to give a local copy instead).
    """
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
        try:
            return datasets.load_dataset(builder, data_files=files, split="train", streaming=streaming, **kwargs)
        except Exception as exc:  # noqa: BLE001 - datasets wraps the reader's error; say which file and line
            raise DataError(unreadable_files_message(builder, files, exc)) from None
    if "/" not in str(source) or str(source).startswith((".", "/", "~")):
        raise DataError(f"{source}: no such file or folder (and not a hub id like 'We-Math/VTBench')")
    from vthinker_plugins import hub

    hint = f"; {local_hint}" if local_hint else ""
    reason = hub.unreachable_reason()
    if reason is not None:
        raise DataUnavailable(f"cannot reach the Hugging Face hub to download {source}: {reason}{hint}")
    try:
        return datasets.load_dataset(str(source), split=split or "train", streaming=streaming, **kwargs)
    except Exception as exc:  # noqa: BLE001 - offline and not cached, not on the hub, connection lost
        mode = " (offline mode is on and it is not in the local cache)" if hub.offline() else ""
        raise DataUnavailable(f"cannot load {source} from the Hugging Face hub{mode}: "
                              f"{_first_line(exc)}{hint}") from None


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of the innermost cause (what the reader itself said)."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _json_problem(file: str) -> str | None:
    """The first thing in a JSON / JSON-lines file that is not a JSON object per row, or ``None``."""
    import json

    text = Path(file).read_text(encoding="utf-8", errors="replace")
    whole: json.JSONDecodeError | None = None
    if not file.endswith(".jsonl"):  # one document (an array of rows), or JSON lines under another name
        try:
            json.loads(text)
            return None
        except json.JSONDecodeError as err:
            whole = err
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if whole is not None and first:  # a document over several lines: where the parser stopped
                return f"{file} line {whole.lineno}: not valid JSON ({whole.msg}, column {whole.colno})"
            return f"{file} line {lineno}: not valid JSON ({err.msg}, column {err.colno})"
        if not isinstance(row, dict):
            return f"{file} line {lineno}: not a JSON object (got {type(row).__name__})"
        first = False
    return None


def unreadable_files_message(builder: str, files: list[str], exc: BaseException) -> str:
    """Why ``datasets`` could not read ``files``: the first line that is not a JSON object (JSON data), or
    else the reader's own message."""
    if builder == "json":
        for file in files:
            problem = _json_problem(file)
            if problem is not None:
                return problem
    names = files[0] if len(files) == 1 else f"{len(files)} {builder} files under {Path(files[0]).parent}"
    return f"{names}: cannot be read as {builder} data: {_first_line(exc)}"


def row_locator(source: str | Path, split: str | None = None) -> Any:
    """``where(i)``: the file and row of the ``i``-th row that :func:`load_rows` yields for ``source``, e.g.
    ``data/test.jsonl row 7 (line 8)``; the source itself for hub ids and ``save_to_disk`` folders, or
    when the rows per file are not known cheaply (csv, json arrays)."""
    path = Path(source).expanduser()
    plain = lambda i: f"{source} row {i}"  # noqa: E731
    if not path.exists() or (path.is_dir() and ((path / "dataset_info.json").exists()
                                                 or (path / "dataset_dict.json").exists())):
        return plain
    try:
        _, files = _data_files(path, split)
    except DataError:
        return plain
    spans: list[tuple[str, list[int] | None, int]] = []  # file, line numbers of its rows (jsonl), its rows
    for file in files:
        if file.endswith(".jsonl"):
            with open(file, encoding="utf-8", errors="replace") as f:
                lines = [n for n, line in enumerate(f, 1) if line.strip()]
            spans.append((file, lines, len(lines)))
        elif file.endswith(".parquet"):
            import pyarrow.parquet as pq

            spans.append((file, None, pq.ParquetFile(file).metadata.num_rows))
        elif len(files) == 1:
            spans.append((file, None, -1))
        else:
            return plain

    def where(i: int) -> str:
        offset = 0
        for file, lines, n in spans:
            if n < 0 or i < offset + n:
                j = i - offset
                line = f" (line {lines[j]})" if lines is not None and j < len(lines) else ""
                return f"{file} row {j}{line}"
            offset += n
        return plain(i)

    return where


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
