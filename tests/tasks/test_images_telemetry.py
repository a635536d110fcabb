"""Image tasks in a real ``celery -A project worker`` subprocess, exporting to a real OTLP
receiver: span attributes (relative paths only) and the processing-time histogram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import images as gen
from tests.support.otlp import OTLPReceiver, Span
from tests.support.polling import eventually


@pytest.mark.e2e
def test_image_spans_and_histogram_from_a_worker_process(start_worker: Any, tmp_path: Path) -> None:
    from project import app

    root = tmp_path / "images"
    gen.save(gen.photo((640, 480)), root / "in/photo.jpg")
    (root / "in/bomb.png").write_bytes(gen.png_header_only(5000, 5000))
    receiver = OTLPReceiver().start()
    try:
        worker = start_worker(
            env={
                "OTEL_SDK_DISABLED": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "KIT_IMAGE_STORAGE_ROOT": str(root),
                "KIT_IMAGE_MAX_PIXELS": "1000000",
            }
        )
        ok = app.send_task(
            "image:resize",
            kwargs={"source_path": "in/photo.jpg", "dest_path": "out/small.png", "width": 160},
        )
        assert ok.get(timeout=60)["height"] == 120
        bomb = app.send_task(
            "image:resize",
            kwargs={"source_path": "in/bomb.png", "dest_path": "out/x.png", "width": 10},
        )
        eventually(lambda: bomb.state == "FAILURE", 60)
        assert "decompression bomb" in str(bomb.result)
        assert gen.opened(root / "out/small.png").size == (160, 120)

        def runs(spans: list[Span]) -> list[Span]:
            return [s for s in spans if s.name == "run/image:resize"]

        spans = receiver.wait_for_spans(lambda spans: len(runs(spans)) == 2)
        good, bad = sorted(runs(spans), key=lambda s: s.start_ns)
        assert {k: v for k, v in good.attributes.items() if k.startswith("image.")} == {
            "image.operation": "resize",
            "image.source.path": "in/photo.jpg",
            "image.source.format": "JPEG",
            "image.source.width": 640,
            "image.source.height": 480,
            "image.source.bytes": (root / "in/photo.jpg").stat().st_size,
            "image.source.frames": 1,
            "image.output.path": "out/small.png",
            "image.output.format": "PNG",
            "image.output.width": 160,
            "image.output.height": 120,
            "image.output.bytes": (root / "out/small.png").stat().st_size,
        }
        children = {s.name for s in spans if s.parent_id == good.span_id}
        assert {"image.decode", "image.encode"} <= children
        assert bad.is_error and bad.attributes["image.source.path"] == "in/bomb.png"
        assert "image.output.path" not in bad.attributes
        for span in spans:
            for value in [*span.attributes.values(), span.status_message]:
                assert str(root) not in str(value), (span.name, value)

        def histogram(outcome: str) -> float:
            return receiver.total(
                "kit.image.duration", **{"image.operation": "resize", "image.outcome": outcome}
            )

        eventually(lambda: histogram("success") == 1 and histogram("error") == 1, 30)
        worker.stop()
    finally:
        receiver.stop()
