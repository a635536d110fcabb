"""The image benchmark end to end on a tiny source: it prints the speed ratio and the quality
figures, and saves them. Sizes this small measure nothing; this only proves it runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_images_benchmark_prints_speedup_and_quality(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "images", "--size", "640x480", "--targets", "300,80",
         "--repeat", "1", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Kit vs naive: width 300:" in result.stdout and "SSIM" in result.stdout
    rows = json.loads((tmp_path / "images.json").read_text())["rows"]
    assert {(r["target_width"], r["path"]) for r in rows} == {
        (w, p) for w in (300, 80) for p in ("naive", "kit", "draft 1x")}
    for row in rows:
        assert row["speedup_vs_naive"] > 0 and row["median_ms"] > 0
        if row["path"] == "kit":  # drafted at twice the output size: indistinguishable
            assert row["ssim"] > 0.98 and row["psnr_db"] > 35, row
    assert (tmp_path / "images.md").read_text().strip() in result.stdout
