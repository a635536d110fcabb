"""JPEG decode+resize: the kit's path against a naive one, timed and compared for quality.

The kit decodes a JPEG at a reduced DCT scale (``draft``) when the output is at most half the
source, but never below twice the output size, then resizes with Lanczos and ``reducing_gap``
(:mod:`tasks.images.decode`, :mod:`tasks.images.ops`: the catalog's own code, which the image
tasks run in the worker). The naive path decodes every pixel and runs Lanczos over all of them.
Each output is compared with the naive one (:mod:`benchmarks.images.quality`). A third path,
``draft`` to exactly the output size, shows what the 2x margin buys in quality.

In-process and single-threaded: no Redis, no worker; it measures the image work itself, the
median of a few timed runs per path after one untimed warm-up.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageDraw

from benchmarks.images.quality import psnr, ssim
from tasks.images.decode import decode
from tasks.images.ops import ResizePlan, apply_resize, plan_resize
from tasks.images.validation import Limits

__all__ = ["DEFAULT_SIZE", "DEFAULT_TARGETS", "PATHS", "measure_images", "source_jpeg"]

DEFAULT_SIZE = (4000, 3000)
DEFAULT_TARGETS = (1200, 800, 256)
_LIMITS = Limits(max_pixels=178_956_970, max_frames=1, max_dimension=65_500, max_bytes=1 << 30)
ImagePath = Callable[[bytes, int], Image.Image]


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


PATHS: dict[str, ImagePath] = {"naive": naive, "kit": kit, "draft 1x": draft_exact}


def _timed(path: ImagePath, data: bytes, width: int, repeat: int) -> tuple[float, Image.Image]:
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
