"""The one on-disk layout of a finished trajectory, written by ``vthinker run`` and both harness models.

One folder per trajectory: the input images, every sandbox image, the annotation and (harness models)
``trajectory.json``; older records are read through :func:`upgrade_record`.
Layout and record format: docs/run.md.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from vthinker_plugins.loop import LoopConfig, Trajectory
from vthinker_plugins.runs.files import atomic_write, changed_settings

LAYOUT = 2
RECORD_FILE = "trajectory.json"
_OLD_IMAGE = re.compile(r"round(\d+)_image(\d+)\.png$")


def json_safe(value: Any) -> Any:
    """``value`` with images dropped and anything else non-JSON turned into text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if not isinstance(v, Image.Image)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value if not isinstance(v, Image.Image)]
    return str(value)


def write_trajectory(trajectory: Trajectory, folder: str | Path, base: str | Path | None = None) -> dict[str, Any]:
    """Write the images of ``trajectory`` into ``folder`` (replacing what an earlier attempt left there)
    and return its record (see the module doc)."""
    folder = Path(folder).resolve()
    base_dir = None if base is None else Path(base).resolve()
    if folder.exists():
        shutil.rmtree(folder)  # a retried sample replaces its own earlier images
    folder.mkdir(parents=True)

    def put(name: str, png: bytes | None = None, image: Image.Image | None = None) -> str:
        path = folder / name
        if png is not None:
            path.write_bytes(png)
        else:
            image.save(path, format="PNG")
        return str(path) if base_dir is None else path.relative_to(base_dir).as_posix()

    sample = trajectory.sample
    record = trajectory.summary()
    record["layout"] = LAYOUT
    record["input_images"] = [put(f"input_{i}.png", image=im) for i, im in enumerate(sample.images)]
    generated: list[str] = []
    for k, (rnd, row) in enumerate(zip(trajectory.rounds, record["rounds"], strict=True), 1):
        images = [] if rnd.result is None else rnd.result.images
        row["images"] = [put(f"round{k}_image{j}.png", png=im.png) for j, im in enumerate(images, 1)]
        generated.extend(row["images"])
        err = rnd.result.error if rnd.result is not None else None
        row["error"] = None if err is None else f"{err.type}: {err.message}"
    record["generated_images"] = generated
    annotation = sample.meta.get("annotation")
    if isinstance(annotation, Image.Image):
        record["annotation_image"] = put("annotation.png", image=annotation)
    return record


def shown_images(record: dict[str, Any], base: str | Path) -> list[Path] | None:
    """Paths of the sandbox images the model was shown, in order, or ``None`` when the record lacks one
    (a round's image list, an image file)."""
    paths: list[Path] = []
    for rnd in record.get("rounds") or []:
        images = rnd.get("images") if isinstance(rnd, dict) else None
        shown = rnd.get("images_shown") if isinstance(rnd, dict) else None
        if not isinstance(images, list) or not isinstance(shown, int) or len(images) < shown:
            return None
        paths.extend(Path(base) / p for p in images[:shown])
    return paths if all(p.is_file() for p in paths) else None


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record of an older layout read as the current one. Rows of ``vthinker run`` before layout 2 list
    only the shown images per round (``images/<id>/round{k}_{j}.png``): read as they are. Harness records
    before layout 2 (``round{r}_image{i}.png``, all images, none listed per round) get their rounds'
    ``images`` from ``generated_images``."""
    if record.get("layout") == LAYOUT:
        return record
    record = dict(record, layout=LAYOUT)
    rounds = record.get("rounds")
    if isinstance(rounds, list) and rounds and all(isinstance(r, dict) and "images" not in r for r in rounds):
        per_round: dict[int, list[str]] = {}
        for path in record.get("generated_images") or []:
            match = _OLD_IMAGE.search(str(path))
            if match is None:
                raise ValueError(f"trajectory record {record.get('record')}: image {path} is not named "
                                 "round<k>_image<j>.png")
            per_round.setdefault(int(match.group(1)), []).append(str(path))
        record["rounds"] = [dict(r, images=per_round.get(k, [])) for k, r in enumerate(rounds, 1)]
    record.setdefault("generated_images", [p for r in rounds or [] if isinstance(r, dict) for p in r.get("images", [])])
    return record


def save_trajectory(trajectory: Trajectory, folder: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`write_trajectory` with absolute paths, plus ``record`` (the JSON file) and ``extra``, written
    to ``<folder>/trajectory.json``: the harness models' record."""
    record = write_trajectory(trajectory, folder)
    record["record"] = str(Path(folder).resolve() / RECORD_FILE)
    if extra:
        record.update(extra)
    atomic_write(Path(folder) / RECORD_FILE, json.dumps(record, ensure_ascii=False, indent=1, default=str))
    return record


def load_record(folder: str | Path) -> dict[str, Any] | None:
    """The record in ``folder`` (older layouts upgraded), or ``None`` when there is none."""
    path = Path(folder) / RECORD_FILE
    if not path.exists():
        return None
    try:
        return upgrade_record(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt trajectory record ({exc}); delete it to regenerate the sample") from exc


def load_images(paths: list[str] | list[Path]) -> list[Image.Image]:
    """Open the images of a record (RGB), failing with the missing path named."""
    images = []
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"generated image {path} referenced by a trajectory record is missing")
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def generation_identity(settings: Any, config: LoopConfig, max_rounds: int | None) -> dict[str, Any]:
    """Everything that decides a sample's trajectory besides the sample (``settings``: a
    :class:`~vthinker_plugins.factory.RunSettings`): kept in a harness record as ``run``."""
    return {
        "model": settings.model,
        "backend_options": settings.generation_options(),
        "max_rounds": max_rounds,
        "max_new_tokens": config.max_new_tokens,
        "max_tool_images": config.max_tool_images,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "persistent_state": config.persistent_state,
        "prompts": settings.prompts_hash(),
    }


def check_resumable(record: dict[str, Any], identity: dict[str, Any], folder: str | Path) -> None:
    """Refuse to resume from a record another model or other settings produced (it would be returned as
    this model's response)."""
    earlier = record.get("run") or {"model": record.get("model")}
    details = changed_settings(earlier, identity, earlier)
    if details:
        raise ValueError(f"vthinker: {folder} holds a trajectory of a different run ({details}); "
                         "use another image_dir (or resume=false to overwrite it)")
