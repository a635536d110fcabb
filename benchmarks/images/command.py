"""``python -m benchmarks images``: the kit's JPEG decode+resize against a naive full decode.

The report is one table per run (time, speed-up and quality per target width and path) and a
closing line with the kit's figures, which is what the suite's table quotes.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import PIL

from benchmarks.core.report import table, write_report
from benchmarks.images.scenario import DEFAULT_SIZE, measure_images

__all__ = ["DEFAULT_REPEAT", "QUICK_REPEAT", "QUICK_SIZE", "parse_size", "run"]

QUICK_SIZE = (1600, 1200)
DEFAULT_REPEAT = 5
QUICK_REPEAT = 2


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H)."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


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
    payload = {"params": params, "machine": facts, "rows": rows}
    write_report(args.output_dir, "images", _markdown(rows, facts, params), payload)
    return 0


def _markdown(
    rows: Sequence[Mapping[str, Any]], facts: Mapping[str, Any], params: Mapping[str, Any]
) -> str:
    header = ["Target width", "Path", "Output", "Median ms", "Speed-up vs naive", "PSNR dB"]
    cells = [
        [
            row["target_width"],
            row["path"],
            row["output"],
            row["median_ms"],
            f"{row['speedup_vs_naive']}x",
            row["psnr_db"],
            row["ssim"],
        ]
        for row in rows
    ]
    kit = "; ".join(
        f"width {r['target_width']}: {r['speedup_vs_naive']}x faster, "
        f"PSNR {r['psnr_db']} dB, SSIM {r['ssim']}"
        for r in rows
        if r["path"] == "kit"
    )
    return "\n".join(
        [
            "## Images: JPEG decode + resize",
            "",
            f"Source {params['source']}; {params['repeat']} timed run(s) per path, median. "
            + ", ".join(f"{k} {v}" for k, v in facts.items())
            + ".",
            "Quality is against the naive output (PSNR on luma, dB; SSIM over 8x8 blocks).",
            "",
            table([*header, "SSIM"], cells, "lllllll", padded=True),
            "",
            f"Kit vs naive: {kit}.",
        ]
    )
