"""report.html: bounded in size (thumbnails, links or full images, a byte budget) and filterable to the
wrong answers; rendered from rows and image files as ``vthinker run`` writes them."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vthinker_plugins.report import THUMBNAIL_PX, write_report


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str | None]] = []  # (src, href of the enclosing link)
        self.sections: dict[str, str] = {}  # id -> class
        self.radios: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "a":
            self._href = attrs.get("href")
        elif tag == "img":
            self.images.append((attrs["src"], self._href))
        elif tag == "section":
            self.sections[attrs["id"]] = attrs["class"]
        elif tag == "input" and attrs.get("type") == "radio":
            self.radios.append(attrs["id"])

    def handle_endtag(self, tag) -> None:
        if tag == "a":
            self._href = None


def _decode(src: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A run folder: a large photo-like input (noise, 1200x900) and a small drawing per row, four rows
    (correct, wrong, error, unscored)."""
    images = tmp_path / "images" / "s"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(images / "input_0.png")
    drawing = Image.new("RGB", (200, 150), "white")
    drawing.paste((255, 0, 0), (20, 20, 60, 60))
    drawing.save(images / "round1_0.png")
    rows = []
    for i, (correct, error) in enumerate([(True, None), (False, None), (None, "RuntimeError: boom"),
                                          (None, None)]):
        rows.append({"id": f"s{i}", "task": "vtbench_reasoning", "question": "Q?", "correct": correct,
                     "error": error, "input_images": ["images/s/input_0.png"], "prediction": "1", "gold": "2",
                     "rounds": [{"text": "t", "code": "print(1)", "status": "ok",
                                 "images": ["images/s/round1_0.png"]}]})
    return tmp_path, rows


def _render(run_dir: Path, rows: list[dict], **kwargs) -> tuple[str, _Page]:
    path = write_report(rows, {"benchmark": "b", "model": "m"}, run_dir / "report.html", base_dir=run_dir, **kwargs)
    text = path.read_text()
    page = _Page()
    page.feed(text)
    return text, page


def test_thumbnails_by_default_link_to_the_full_images(run_dir) -> None:
    folder, rows = run_dir
    text, page = _render(folder, rows)
    assert len(page.images) == 8
    for src, href in page.images:
        assert src.startswith("data:image/") and href in ("images/s/input_0.png", "images/s/round1_0.png")
        assert (folder / href).is_file()
        assert max(_decode(src).size) <= max(THUMBNAIL_PX, 200)
    big = [src for src, href in page.images if href.endswith("input_0.png")]
    assert max(_decode(big[0]).size) == THUMBNAIL_PX
    # Four copies of a 3 MB input: the page stays far below one of them.
    assert (folder / "images/s/input_0.png").stat().st_size > 3_000_000 and len(text) < 400_000


def test_links_and_full_embedding_and_the_byte_budget(run_dir) -> None:
    folder, rows = run_dir
    text, page = _render(folder, rows, images="links")
    assert all(src == href and not src.startswith("data:") for src, href in page.images)
    assert len(text) < 20_000
    _, page = _render(folder, rows, images="embed")
    assert all(href is None for _, href in page.images)
    assert _decode(page.images[0][0]).size == (1200, 900)
    # Past the budget images are links, and the page says how many.
    text, page = _render(folder, rows, images="embed", max_embedded_bytes=6_000_000)
    linked = [src for src, _ in page.images if not src.startswith("data:")]
    assert linked and len(text) < 6_100_000
    assert f"{len(linked)} image(s) past the report's" in text
    with pytest.raises(ValueError, match="thumbnails, links, embed"):
        _render(folder, rows, images="huge")


def test_filter_shows_the_wrong_answers(run_dir) -> None:
    folder, rows = run_dir
    text, page = _render(folder, rows[:3])  # no unscored row: no button for it
    assert page.sections == {"s-s0": "sample st-correct", "s-s1": "sample st-wrong", "s-s2": "sample st-error"}
    assert page.radios == ["show-all", "show-wrong", "show-error", "show-correct"]
    assert re.search(r'<label for="show-wrong">wrong \(1\)</label>', text)
    # The checked "wrong" button hides every sample (and nav link) that is not wrong.
    assert "#show-wrong:checked~.samples section.sample:not(.st-wrong)" in text
    assert '<a class="st-wrong" href="#s-s1">' in text
