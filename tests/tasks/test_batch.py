"""The batch image pipeline on a real worker: one bad image never costs the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from project import ValidationError, app
from tasks.images.batch import process_images
from tests.support import images as gen
from tests.support.workers import WorkerProcess

StartWorker = Callable[..., WorkerProcess]


def _sources(root: Path, good: int, corrupt: int) -> list[str]:
    """``good`` small photos and ``corrupt`` undecodable files, mixed through the list."""
    paths: list[str] = []
    for index in range(good + corrupt):
        name = f"in/img{index:03d}.png"
        if index % ((good + corrupt) // corrupt) == 7 and corrupt > len(
            [p for p in paths if "bad" in p]
        ):
            name = f"in/bad{index:03d}.png"
            (root / "in").mkdir(exist_ok=True)
            (root / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
        else:
            gen.save(gen.photo((96, 64)), root / name)
        paths.append(name)
    return paths


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_hundred_images_with_five_corrupt_ones(tmp_path: Path, start_worker: StartWorker) -> None:
    root = tmp_path / "images"
    root.mkdir()
    sources = _sources(root, good=95, corrupt=5)
    assert sum("bad" in s for s in sources) == 5
    worker = start_worker(concurrency=2, env={"KIT_IMAGE_STORAGE_ROOT": str(root)})

    handle = process_images(sources, output_dir="out", options={"resize": {"width": 48}})
    progress = handle.wait(timeout=240)

    summary = json.loads((root / "out" / "summary.json").read_text())
    errors = {image["source"]: image["error"] for image in summary["images"] if image["error"]}
    assert (summary["processed"], summary["failed"]) == (95, 5)
    assert sorted(errors) == sorted(s for s in sources if "bad" in s)
    assert all(error.startswith("image:resize: ") for error in errors.values())
    finals = sorted(p.name for p in (root / "out").glob("*.compress.jpg"))
    assert len(finals) == 95 and not any(name.startswith("bad") for name in finals)
    good = next(image for image in summary["images"] if not image["error"])
    assert [o["task"] for o in good["outputs"]] == [
        "image:resize",
        "image:watermark",
        "image:compress",
    ]
    assert good["outputs"][0]["width"] == 48 and all(o["bytes"] > 0 for o in good["outputs"])
    # 100 images x 3 steps + the summary; a corrupt image's three steps count as failed.
    assert (progress.done, progress.failed, progress.pending) == (95 * 3 + 1, 5 * 3, 0)
    # ...and the worker is still healthy: it answers and runs new work.
    assert app.control.ping([worker.nodename.replace("%h", _host())], timeout=5)
    assert app.send_task("tests.add", (2, 3)).get(timeout=30) == 5


def _host() -> str:
    import socket

    return socket.gethostname()


def test_a_mistake_in_the_operations_is_refused_before_anything_is_published(
    redis: Any,
) -> None:
    with pytest.raises(ValidationError, match="operations"):
        process_images(["a.png"], ["resize", "sharpen"])
    with pytest.raises(ValidationError, match="widht"):
        process_images(["a.png"], ["resize"], options={"resize": {"widht": 3}})
    assert redis.dbsize() == 0
