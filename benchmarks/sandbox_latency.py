"""Latency and throughput of the sandbox vs. a cold python subprocess per cell vs. in-process exec.

Usage: python benchmarks/sandbox_latency.py [--n 60] [--cold-n 15] [--workers N] [--workload heavy|light|both]

Workloads (identical code in all three runners):
  heavy: load a 1024x1024 image, draw lines and text with PIL and with matplotlib, save both (the brief's).
  light: load a 512x512 image, draw one line, save (isolates the per-cell overhead).
The sandbox numbers include everything the caller pays: writing the input, the worker round trip, and the
host-side output checks. In-process exec is what the original release does (no isolation at all).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKLOADS = {
    "heavy": (1024, (
        "img = Image.open(image_path).convert('RGB')\n"
        "d = ImageDraw.Draw(img)\n"
        "for i in range(8):\n"
        "    d.line([(0, i * 128), (1023, 1023 - i * 128)], fill=(255, 0, 0), width=3)\n"
        "d.text((20, 20), 'A1', fill=(0, 0, 255))\n"
        "img.save(processed_path)\n"
        "fig, ax = plt.subplots(figsize=(4, 4), dpi=64)\n"
        "ax.imshow(np.asarray(img))\n"
        "ax.plot([0, 1023], [0, 1023], 'g-')\n"
        "ax.text(100, 100, 'B')\n"
        "ax.axis('off')\n"
        "fig.savefig(os.path.join(output_dir, 'mpl.png'))\n"
        "plt.close(fig)\n"
        "print(processed_path)\n"
    )),
    "light": (512, (
        "img = Image.open(image_path)\n"
        "ImageDraw.Draw(img).line([(0, 0), (511, 511)], fill=(255, 0, 0), width=2)\n"
        "img.save(processed_path)\n"
        "print(processed_path)\n"
    )),
}

PRELUDE = (
    "import math, os, sys\n"
    "import numpy as np, cv2, matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "from PIL import Image, ImageDraw, ImageFont\n"
    "image_path, output_dir = sys.argv[1], sys.argv[2]\n"
    "processed_path = os.path.join(output_dir, 'processed.png')\n"
)


def sample_image(size: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    for i in range(10):
        k = size // 20
        box = [k + i * k, k + i * k // 2, size // 2 + i * k, size // 2 + i * k]
        d.ellipse(box, outline=(i * 20, 0, 0), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": 1000 * statistics.median(s), "p95_ms": 1000 * s[min(len(s) - 1, int(0.95 * len(s)))],
            "mean_ms": 1000 * statistics.fmean(s), "n": len(s)}


def bench_inprocess(code: str, img: bytes, n: int) -> dict:
    import math

    import cv2
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image, ImageDraw, ImageFont

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.png")
        with open(src, "wb") as f:
            f.write(img)
        out = os.path.join(d, "out")
        os.mkdir(out)
        times = []
        for _ in range(n + 3):
            t0 = time.perf_counter()
            ns = {"Image": Image, "ImageDraw": ImageDraw, "ImageFont": ImageFont, "np": np, "cv2": cv2,
                  "math": math, "plt": plt, "matplotlib": matplotlib, "os": os, "image_path": src,
                  "output_dir": out, "processed_path": os.path.join(out, "processed.png")}
            buf = io.StringIO()
            old, sys.stdout = sys.stdout, buf
            try:
                exec(compile(code, "<cell>", "exec"), ns)
            finally:
                sys.stdout = old
            for name in os.listdir(out):  # the caller reads the produced images back
                with open(os.path.join(out, name), "rb") as f:
                    f.read()
                os.unlink(os.path.join(out, name))
            times.append(time.perf_counter() - t0)
    r = stats(times[3:])
    r["throughput_cps"] = 1 / statistics.fmean(times[3:])  # one interpreter: the GIL serialises cells
    return r


def bench_cold(code: str, img: bytes, n: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.png")
        with open(src, "wb") as f:
            f.write(img)
        script = os.path.join(d, "cell.py")
        with open(script, "w") as f:
            f.write(PRELUDE + code)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENBLAS_NUM_THREADS": "1",
               "MPLBACKEND": "Agg",
               "HOME": os.environ.get("HOME", d)}

        def once(i: int) -> float:
            out = os.path.join(d, f"out{i}")
            os.mkdir(out)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, script, src, out], check=True, capture_output=True, env=env)
            for name in os.listdir(out):
                with open(os.path.join(out, name), "rb") as f:
                    f.read()
            return time.perf_counter() - t0

        once(-1)
        times = [once(i) for i in range(n)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(once, range(n, 2 * n)))
        thr = n / (time.perf_counter() - t0)
    r = stats(times)
    r["throughput_cps"] = thr
    return r


def bench_sandbox(sb, code: str, img: bytes, n: int) -> dict:
    for _ in range(2 * len(sb._pool.workers)):
        r = sb.run(code, [img])
        assert r.ok, (r.status, r.error, r.stderr)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = sb.run(code, [img])
        times.append(time.perf_counter() - t0)
        assert r.ok and r.images, (r.status, r.error)
    m = max(4 * n, 8 * len(sb._pool.workers))
    t0 = time.perf_counter()
    res = sb.run_batch([(code, [img])] * m)
    thr = m / (time.perf_counter() - t0)
    assert all(r.ok for r in res)
    r = stats(times)
    r["throughput_cps"] = thr
    r["throughput_n"] = m
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="sequential samples for sandbox and exec")
    ap.add_argument("--cold-n", type=int, default=15, help="samples for the cold subprocess")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--workload", choices=["heavy", "light", "both"], default="both")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()

    from sandbox import Sandbox, SandboxConfig

    names = ["heavy", "light"] if args.workload == "both" else [args.workload]
    out: dict = {"cores": os.cpu_count()}
    t0 = time.perf_counter()
    with Sandbox(SandboxConfig(workers=args.workers)) as sb:
        sb.start()
        out["pool_start_s"] = time.perf_counter() - t0
        out["isolation"] = sb.report["isolation"]
        workers = len(sb._pool.workers)
        out["workers"] = workers
        for name in names:
            size, code = WORKLOADS[name]
            img = sample_image(size)
            res = {"sandbox": bench_sandbox(sb, code, img, args.n),
                   "inprocess_exec": bench_inprocess(code, img, args.n),
                   "cold_subprocess": bench_cold(code, img, args.cold_n, workers)}
            s, e, c = (res[k]["p50_ms"] for k in ("sandbox", "inprocess_exec", "cold_subprocess"))
            res["ratios"] = {"sandbox_over_exec_p50": s / e, "cold_over_sandbox_p50": c / s,
                             "sandbox_overhead_ms_p50": s - e}
            out[name] = res
    print(f"sandbox isolation={out['isolation']} workers={out['workers']} cores={out['cores']} "
          f"pool start {out['pool_start_s']:.2f} s")
    for name in names:
        res = out[name]
        print(f"\n[{name}] {WORKLOADS[name][0]}x{WORKLOADS[name][0]} image")
        print(f"  {'runner':<18}{'p50 ms':>9}{'p95 ms':>9}{'cells/s':>10}")
        for k in ("sandbox", "inprocess_exec", "cold_subprocess"):
            r = res[k]
            print(f"  {k:<18}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['throughput_cps']:>10.1f}")
        q = res["ratios"]
        print(f"  sandbox p50 / exec p50 = {q['sandbox_over_exec_p50']:.2f}x (target <= 3x); "
              f"cold p50 / sandbox p50 = {q['cold_over_sandbox_p50']:.1f}x (target >= 25x); "
              f"sandbox throughput {res['sandbox']['throughput_cps']:.0f} cells/s (target >= 120 on 2 cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
