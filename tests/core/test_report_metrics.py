"""The report's metric table: one row per task, nested official layouts folded below."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from vthinker_plugins.report import render_report


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.in_by_task = False
        self.details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "table":
            self.in_by_task = "by-task" in cls
        elif tag == "tr" and self.in_by_task:
            self.rows.append([])
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_by_task = False

    def handle_data(self, data: str) -> None:
        if self.in_by_task and self.rows:
            self.rows[-1].append(data)


def test_metrics_render_one_row_per_task(tmp_path: Path) -> None:
    summary = {
        "benchmark": "mix",
        "model": "m",
        "metrics": {
            "mathvision": {"n": 4, "accuracy": 0.5, "official": {"-all": "2/4=50.00%", "-level1": "1/2=50.00%"}},
            "vtbench_reasoning": {"n": 2, "accuracy": 1.0, "judge_failed": 0},
        },
    }
    parser = _Tables()
    parser.feed(render_report([], summary, tmp_path))
    header, *body = parser.rows
    assert header == ["task", "n", "accuracy", "judge_failed"]
    assert body == [["mathvision", "4", "0.5"], ["vtbench_reasoning", "2", "1.0", "0"]]
    assert parser.details == 1  # the official per-level layout is folded below the table
