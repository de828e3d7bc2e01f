"""Throughput and peak memory of ``vthinker convert interaction`` on V-Interaction-shaped parquet.

Writes synthetic parquet files of growing size (hub schema, embedded PNG images), converts
each in a fresh process and prints rows/s and peak RSS. Baselines measured in the same run:
- the rate of merely streaming the same rows (``read``), so ``convert/read`` shows the
  conversion's own cost;
- the peak RSS of the smallest size, so ``rss/rss_1k`` shows whether memory grows with
  the input (it should stay ~1: the converter streams).

    .venvs/main/bin/python benchmarks/convert_throughput.py            # 1k and 10k rows
    .venvs/main/bin/python benchmarks/convert_throughput.py --full     # + 50k rows
Target: >= 1,000 rows/s and flat memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
mode, src, out, num_proc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = time.perf_counter()
if mode == "read":
    from vthinker_plugins.data.cli import open_splits
    streams, _, _ = open_splits(src, [None], "interaction")
    n = sum(1 for _, rows in streams for _ in rows)
else:
    from vthinker_plugins.cli import main
    main(["convert", "interaction", "--source", src, "--out", out, "--no-progress", "--overwrite",
          "--num-proc", str(num_proc)])
    n = json.load(open(out + "/reports/v_interaction/summary.json"))["rows"]
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("RESULT", json.dumps({"rows": n, "seconds": dt, "peak_rss_mb": rss / 1024}))
"""


def write_parquet(path: Path, n: int) -> None:
    """``n`` hub-schema rows; a few distinct images are reused so generation stays fast."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image, ImageDraw

    def png(i: int, edited: bool) -> bytes:
        img = Image.new("RGB", (336, 336), "white")
        d = ImageDraw.Draw(img)
        d.rectangle([20, 20, 100 + i * 10, 200], outline="black", width=3)
        if edited:
            d.line([(20, 20), (300, 300)], fill="red", width=3)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    images = [(png(i, False), png(i, True)) for i in range(16)]
    features = datasets.Features({
        "id": datasets.Value("string"), "question": datasets.Value("string"), "image": datasets.Image(),
        "original_img_code": datasets.Value("string"), "edited_image": datasets.Image(),
        "tool_code": datasets.Value("string"), "CoT_with_code": datasets.Value("string"),
        "answer": datasets.Value("string"),
    })
    schema = features.arrow_schema
    code = "from PIL import Image\nimg = Image.open(image_path)\nimg.save(processed_path)\nprint(processed_path)"
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, 1000):
            rows = []
            for i in range(start, min(n, start + 1000)):
                a, b = images[i % len(images)]
                rows.append({
                    "id": f"bench-{i}", "question": f"Find the length of segment {i}.",
                    "image": {"bytes": a, "path": None}, "original_img_code": "# figure code",
                    "edited_image": {"bytes": b, "path": None}, "tool_code": code,
                    "CoT_with_code": f"<think>Draw the diagonal.\n<code>\n```python\n{code}\n```\n</code>\n"
                                     f"The diagonal gives {i}.</think>\n<answer>{i}</answer>",
                    "answer": str(i),
                })
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def run(mode: str, src: Path, out: Path, num_proc: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(out), str(num_proc)],
                          capture_output=True, text=True, env=env, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="also 50k rows")
    parser.add_argument("--num-proc", type=int, default=1, help="converter worker processes")
    args = parser.parse_args()
    sizes = [1_000, 10_000, *([50_000] if args.full else [])]
    with tempfile.TemporaryDirectory() as tmp:
        base_rss = None
        print(f"{'rows':>7} {'read rows/s':>12} {'convert rows/s':>15} {'convert/read':>13} "
              f"{'peak RSS MB':>12} {'rss/rss_1k':>11}")
        for n in sizes:
            src = Path(tmp) / f"in{n}" / "train.parquet"
            src.parent.mkdir()
            t = time.perf_counter()
            write_parquet(src, n)
            gen_s = time.perf_counter() - t
            read = run("read", src.parent, Path(tmp) / "unused", 1)
            conv = run("convert", src.parent, Path(tmp) / f"out{n}", args.num_proc)
            read_rate, conv_rate = read["rows"] / read["seconds"], conv["rows"] / conv["seconds"]
            base_rss = base_rss or conv["peak_rss_mb"]
            print(f"{n:>7} {read_rate:>12.0f} {conv_rate:>15.0f} {conv_rate / read_rate:>13.2f} "
                  f"{conv['peak_rss_mb']:>12.0f} {conv['peak_rss_mb'] / base_rss:>11.2f}"
                  f"   (input written in {gen_s:.1f}s)")


if __name__ == "__main__":
    main()
