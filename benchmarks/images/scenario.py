"""``python -m benchmarks images``: JPEG decode+resize, the kit's path against a naive one.

The kit decodes a JPEG at a reduced DCT scale (``draft``) when the output is at most half the
source, but never below twice the output size, then resizes with Lanczos and ``reducing_gap``
(:mod:`tasks.images.decode`, :mod:`tasks.images.ops`). The naive path decodes every pixel
and runs Lanczos over all of them. Speed is only worth having if the pictures look the same, so
each output is also compared with the naive one: PSNR and SSIM on luma (SSIM over 8x8 blocks;
1.0 and infinity mean identical). A third path, ``draft`` to exactly the output size, shows what
the 2x margin buys in quality.

In-process and single-threaded: no Redis, no worker; it measures the image work itself.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageDraw

from tasks.images.decode import decode
from tasks.images.ops import ResizePlan, apply_resize, plan_resize
from tasks.images.validation import Limits

__all__ = ["add_parser", "measure_images", "psnr", "run", "ssim"]

DEFAULT_SIZE = (4000, 3000)
QUICK_SIZE = (1600, 1200)
DEFAULT_TARGETS = (1200, 800, 256)
DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
_LIMITS = Limits(max_pixels=178_956_970, max_frames=1, max_dimension=65_500, max_bytes=1 << 30)
Path_ = Callable[[bytes, int], Image.Image]


def add_parser(commands: Any, default_output: Path) -> None:
    """The ``images`` sub-command, registered by :mod:`benchmarks.__main__`."""
    sub = commands.add_parser(
        "images", help="JPEG decode+resize: the kit's draft/reduce path vs a naive full decode"
    )
    sub.add_argument(
        "--size",
        type=_size,
        default=None,
        help="source WxH (default 4000x3000, 1600x1200 with --quick)",
    )
    sub.add_argument(
        "--targets",
        type=lambda t: tuple(int(v) for v in t.split(",")),
        default=DEFAULT_TARGETS,
        help="output widths, comma-separated",
    )
    sub.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed runs per path (default {DEFAULT_REPEAT}, {QUICK_REPEAT} quick)",
    )
    sub.add_argument("--quick", action="store_true", help="a smaller source, fewer runs")
    sub.add_argument(
        "--output-dir",
        type=Path,
        default=default_output,
        help="where images.md and images.json go (default benchmarks/results)",
    )


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def source_jpeg(size: tuple[int, int]) -> bytes:
    """A photo-like JPEG: smooth gradients, sharp shapes, fine text and sensor-like noise."""
    width, height = size
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize(size),
        ),
    )
    noise = Image.effect_noise(size, 18).convert("RGB")
    image = Image.blend(base, noise, 0.15)
    draw = ImageDraw.Draw(image)
    for i in range(40):
        x, y = (i * 7919) % width, (i * 104729) % height
        draw.ellipse((x, y, x + width // 12, y + height // 12), outline=(250, 240, 20), width=3)
        draw.text((x, y), "celery-kit 0123456789", fill=(10, 10, 10))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def naive(data: bytes, width: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        height = round(image.height * width / image.width)
        return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def kit(data: bytes, width: int) -> Image.Image:
    def plan(w: int, h: int) -> ResizePlan:
        return plan_resize(w, h, width, None, "fit", upscale=False)

    decoded = decode(data, "bench.jpg", _LIMITS, needed=lambda w, h: plan(w, h).needed)
    return apply_resize(decoded.image, plan(decoded.width, decoded.height))


def draft_exact(data: bytes, width: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        height = round(image.height * width / image.width)
        image.draft("RGB", (width, height))
        return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


PATHS: dict[str, Path_] = {"naive": naive, "kit": kit, "draft 1x": draft_exact}


def _luma(image: Image.Image, width: int, height: int) -> bytes:
    return image.convert("L").crop((0, 0, width, height)).tobytes()


def psnr(reference: Image.Image, other: Image.Image) -> float:
    """Peak signal-to-noise ratio on luma, in dB (infinity for identical images)."""
    a, b = _luma(reference, *reference.size), _luma(other, *reference.size)
    mse = sum((p - q) * (p - q) for p, q in zip(a, b, strict=True)) / len(a)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(reference: Image.Image, other: Image.Image, block: int = 8) -> float:
    """Mean structural similarity on luma over ``block`` x ``block`` windows.

    Products are formed per pixel in Python, block means by Pillow's BOX resampling (exact
    averages when the size divides evenly, which the crop ensures).
    """
    width, height = (reference.width // block) * block, (reference.height // block) * block
    a, b = _luma(reference, width, height), _luma(other, width, height)
    small = (width // block, height // block)

    def means(values: list[int]) -> array[float]:
        image = Image.frombytes("F", (width, height), array("f", values).tobytes())
        return array("f", image.resize(small, Image.Resampling.BOX).tobytes())

    mx, my = means(list(a)), means(list(b))
    xx, yy = means([p * p for p in a]), means([q * q for q in b])
    xy = means([p * q for p, q in zip(a, b, strict=True)])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total = 0.0
    for i in range(len(mx)):
        vx, vy, cov = xx[i] - mx[i] ** 2, yy[i] - my[i] ** 2, xy[i] - mx[i] * my[i]
        total += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2)) / (
            (mx[i] ** 2 + my[i] ** 2 + c1) * (vx + vy + c2)
        )
    return total / len(mx)


def _timed(path: Path_, data: bytes, width: int, repeat: int) -> tuple[float, Image.Image]:
    output = path(data, width)  # warm-up, and the image compared for quality
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        path(data, width)
        times.append(time.perf_counter() - started)
    return statistics.median(times), output


def measure_images(
    size: tuple[int, int], targets: tuple[int, ...], repeat: int
) -> tuple[list[dict[str, Any]], bytes]:
    """One row per (target width, path): median time, speed-up and quality; and the source."""
    data = source_jpeg(size)
    rows: list[dict[str, Any]] = []
    for width in targets:
        timings = {name: _timed(path, data, width, repeat) for name, path in PATHS.items()}
        reference = timings["naive"][1]
        for name, (seconds, output) in timings.items():
            rows.append(
                {
                    "target_width": width,
                    "path": name,
                    "output": f"{output.width}x{output.height}",
                    "median_ms": round(seconds * 1000, 2),
                    "speedup_vs_naive": round(timings["naive"][0] / seconds, 2),
                    "psnr_db": round(psnr(reference, output), 2),
                    "ssim": round(ssim(reference, output), 4),
                }
            )
    return rows, data


def run(args: argparse.Namespace, command: str) -> int:
    size: tuple[int, int] = args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    repeat: int = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    rows, data = measure_images(size, args.targets, repeat)
    facts = {
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    params = {
        "command": command,
        "source": f"{size[0]}x{size[1]} JPEG q90 ({len(data)} bytes)",
        "repeat": repeat,
        "timer": "median of perf_counter",
    }
    text = _markdown(rows, facts, params)
    print(text)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "images.md").write_text(text + "\n")
    payload = {"params": params, "machine": facts, "rows": rows}
    (args.output_dir / "images.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.output_dir / 'images.md'} and images.json", file=sys.stderr)
    return 0


def _markdown(rows: list[dict[str, Any]], facts: dict[str, Any], params: dict[str, Any]) -> str:
    lines = [
        "## Images: JPEG decode + resize",
        "",
        f"Source {params['source']}; {params['repeat']} timed run(s) per path, median. "
        + ", ".join(f"{k} {v}" for k, v in facts.items())
        + ".",
        "Quality is against the naive output (PSNR on luma, dB; SSIM over 8x8 blocks).",
        "",
        "| Target width | Path | Output | Median ms | Speed-up vs naive | PSNR dB | SSIM |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['target_width']} | {row['path']} | {row['output']} | {row['median_ms']} | "
            f"{row['speedup_vs_naive']}x | {row['psnr_db']} | {row['ssim']} |"
        )
    kit_rows = [r for r in rows if r["path"] == "kit"]
    lines += [
        "",
        "Kit vs naive: "
        + "; ".join(
            f"width {r['target_width']}: {r['speedup_vs_naive']}x faster, "
            f"PSNR {r['psnr_db']} dB, SSIM {r['ssim']}"
            for r in kit_rows
        )
        + ".",
    ]
    return "\n".join(lines)
