"""``python -m sandbox demo``: run a V-Thinker-style drawing program on a generated geometry figure."""

from __future__ import annotations

import io
import os
import time

DEMO_CODE = '''\
# Draw the altitude from C onto AB and mark the foot H (what a V-Thinker cell typically does).
img = Image.open(image_path).convert("RGB")
draw = ImageDraw.Draw(img)
A, B, C = (80, 420), (520, 420), (230, 90)
AB, AC = (B[0] - A[0], B[1] - A[1]), (C[0] - A[0], C[1] - A[1])
t = (AC[0] * AB[0] + AC[1] * AB[1]) / (AB[0] ** 2 + AB[1] ** 2)
H = (A[0] + t * (B[0] - A[0]), A[1] + t * (B[1] - A[1]))
draw.line([C, H], fill=(220, 30, 30), width=3)
draw.ellipse([H[0] - 6, H[1] - 6, H[0] + 6, H[1] + 6], fill=(220, 30, 30))
draw.text((H[0] + 8, H[1] + 6), "H", fill=(220, 30, 30), font=ImageFont.load_default(size=22))
img.save(processed_path)
print(processed_path)
print("CH =", round(math.dist(C, H), 1))
'''


def sample_image() -> bytes:
    """A triangle ABC with labelled vertices, 600x500."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (600, 500), "white")
    d = ImageDraw.Draw(img)
    pts = {"A": (80, 420), "B": (520, 420), "C": (230, 90)}
    d.polygon(list(pts.values()), outline=(20, 20, 20), width=3)
    font = ImageFont.load_default(size=22)
    for name, (x, y) in pts.items():
        pos = (x - 24 if name == "A" else x + 8, y - 30 if name == "C" else y + 4)
        d.text(pos, name, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def run_demo(out_dir: str) -> int:
    from .api import Sandbox

    os.makedirs(out_dir, exist_ok=True)
    src = sample_image()
    with open(os.path.join(out_dir, "sample_input.png"), "wb") as f:
        f.write(src)
    t0 = time.perf_counter()
    with Sandbox() as sb:
        sb.start()
        started = time.perf_counter() - t0
        first = sb.run(DEMO_CODE, [src])
        warm = sb.run(DEMO_CODE, [src])
        isolation = sb.report["isolation"]
    if not first.ok or not first.images:
        print(f"sandbox demo FAILED: {first.status.value} {first.error} {first.stderr}")
        return 1
    result = os.path.join(out_dir, "result.png")
    with open(result, "wb") as f:
        f.write(first.images[0].png)
    line = (f"sandbox demo: {first.status.value}; first cell {first.wall_s * 1000:.1f} ms, warm cell "
            f"{warm.wall_s * 1000:.1f} ms, pool start {started:.2f} s, isolation {isolation}; "
            f"{first.stdout.strip().splitlines()[-1]}; wrote {result}")
    with open(os.path.join(out_dir, "timing.txt"), "w") as f:
        f.write(line + "\n")
    print(line)
    return 0
