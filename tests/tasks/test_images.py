"""The image catalog through a real worker (in-thread, bound to the kit's app), on real images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chain
from PIL import Image

from project import ValidationError
from project.broker.queues import queue_keys
from project.errors import TransientError
from project.lifecycle.kit import default_kit
from project.retries.archive import ArchivedTask, Reason
from project.storage import LocalStorage
from tasks.images.tasks import compress, resize, thumbnail, watermark
from tests.support import images as gen
from tests.support.polling import eventually
from tests.tasks.images.test_jobs import hostile_files

TIMEOUT = 30


def _archived(task_id: str) -> ArchivedTask:
    archive = default_kit().archive()
    return eventually(lambda: archive.get(task_id), TIMEOUT)


def _waiting(redis: Any) -> int:
    return sum(redis.llen(key) for q in ("critical", "default", "low") for key in queue_keys(q))


def test_each_task_through_the_worker(celery_worker: Any, image_root: Path) -> None:
    gen.save(gen.photo((640, 480)), image_root / "in/photo.jpg", quality=92)
    gen.save(gen.rgba_circle((200, 200)), image_root / "in/logo.png")
    (image_root / "in/rot.jpg").write_bytes(gen.jpeg_with_orientation(gen.halves((200, 100)), 6))

    r = resize.delay(source_path="in/photo.jpg", dest_path="out/r.webp", width=320).get(TIMEOUT)
    assert {k: r[k] for k in ("path", "width", "height", "format", "frames")} == {
        "path": "out/r.webp",
        "width": 320,
        "height": 240,
        "format": "webp",
        "frames": 1,
    }
    assert r["bytes"] == (image_root / "out/r.webp").stat().st_size and r["elapsed"] >= 0
    assert gen.opened(image_root / "out/r.webp").size == (320, 240)

    o = resize.delay(source_path="in/rot.jpg", dest_path="out/o.png", height=50).get(TIMEOUT)
    upright = gen.opened(image_root / "out/o.png")
    assert (o["width"], o["height"]) == (25, 50) == upright.size
    assert gen.close_to(gen.px(upright, (12, 5)), gen.RED)

    w = watermark.delay(
        source_path="in/photo.jpg",
        dest_path="out/w.jpg",
        watermark_path="in/logo.png",
        position="center",
        opacity=1.0,
        scale=0.5,
    ).get(TIMEOUT)
    marked = gen.opened(image_root / "out/w.jpg")
    assert w["format"] == "jpeg" and gen.close_to(gen.px(marked, (320, 240)), gen.RED)

    c = compress.delay(
        source_path="in/logo.png", dest_path="out/c.jpg", quality=70, background="black"
    ).get(TIMEOUT)
    flat = gen.opened(image_root / "out/c.jpg")
    assert c["quality"] == 70 and flat.mode == "RGB"
    assert gen.close_to(gen.px(flat, (3, 3)), (0, 0, 0), 10)

    t = thumbnail.delay(
        source_path="in/photo.jpg", dest_path="out/t.png", sizes=[32, 128], mode="fill"
    ).get(TIMEOUT)
    assert [(x["path"], x["width"], x["height"]) for x in t["thumbnails"]] == [
        ("out/t_128x128.png", 128, 128),
        ("out/t_32x32.png", 32, 32),
    ]


def test_queues_are_declared(image_root: Path) -> None:
    assert (resize.default_queue, compress.default_queue) == ("default", "default")
    assert (thumbnail.default_queue, watermark.default_queue) == ("default", "low")


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        (resize, {"source_path": "../etc/passwd", "dest_path": "o.jpg", "width": 5}, "'..'"),
        (resize, {"source_path": "/etc/passwd", "dest_path": "o.jpg", "width": 5}, "absolute"),
        (resize, {"source_path": "a\x00.jpg", "dest_path": "o.jpg", "width": 5}, "NUL"),
        (resize, {"source_path": "a.jpg", "dest_path": "../../o.jpg", "width": 5}, "'..'"),
        (resize, {"source_path": "a.jpg", "dest_path": "o.jpg"}, "width, height or both"),
        (resize, {"source_path": "a.jpg", "dest_path": "o.jpg", "widht": 5}, "unknown"),
        (resize, {"source_path": "a.jpg", "dest_path": "o.jpg", "width": 10**6}, "accepts"),
        (resize, {"source_path": "a.jpg", "dest_path": "o.bmp", "width": 5}, "must end in"),
        (watermark, {"source_path": "a.jpg", "dest_path": "o.jpg"}, "exactly one of"),
        (
            watermark,
            {
                "source_path": "a.jpg",
                "dest_path": "o.jpg",
                "text": "x",
                "watermark_path": "/abs.png",
            },
            "absolute",
        ),
        (compress, {"source_path": "a.jpg", "dest_path": "o.jpg", "lossless": True}, "lossless"),
        (compress, {"source_path": "a.jpg", "dest_path": "o.png", "target_bytes": 9}, "lossy"),
        (thumbnail, {"source_path": "a.jpg", "dest_path": "t.jpg", "sizes": []}, "sizes"),
    ],
)
def test_bad_arguments_raise_at_enqueue_and_publish_nothing(
    task: Any, kwargs: dict[str, Any], message: str, redis: Any
) -> None:
    with pytest.raises(ValidationError, match=message):
        task.delay(**kwargs)
    with pytest.raises(ValidationError, match=message):
        task.apply_async(kwargs=kwargs, queue="critical")
    assert _waiting(redis) == 0


def test_path_escapes_sent_around_the_check_fail_in_the_worker_without_retry(
    celery_worker: Any, image_root: Path, tmp_path: Path
) -> None:
    from project import app

    outside = tmp_path / "outside"
    outside.mkdir()
    gen.save(gen.halves((20, 20)), outside / "secret.png")
    (image_root / "link.png").symlink_to(outside / "secret.png")
    (image_root / "dir").symlink_to(outside)
    sources = [
        "../outside/secret.png",
        str(outside / "secret.png"),
        "link.png",
        "dir/secret.png",
        "a\x00.png",
        "a/../../outside/secret.png",
    ]
    ids = [
        Celery.send_task(  # as a producer without the kit sends it
            app, "image:resize", kwargs={"source_path": s, "dest_path": "o.png", "width": 5}
        ).id
        for s in sources
    ]
    ids.append(
        Celery.send_task(  # as a producer without the kit sends it
            app,
            "image:resize",
            kwargs={"source_path": "link.png", "dest_path": "dir/stolen.png", "width": 5},
        ).id
    )
    for task_id in ids:
        record = _archived(task_id)
        assert record.reason == Reason.PERMANENT and record.attempts == 1, record
        assert record.error_type == "ValidationError"
        assert str(image_root) not in record.error
    assert not (image_root / "o.png").exists() and not (outside / "stolen.png").exists()


def test_hostile_images_are_archived_at_once_and_the_worker_carries_on(
    celery_worker: Any, image_root: Path
) -> None:
    expected = hostile_files(image_root)
    ids = {
        name: resize.delay(source_path=name, dest_path=f"o/{name}.png", width=10).id
        for name in expected
    }
    for name, message in expected.items():
        record = _archived(ids[name])
        assert record.reason == Reason.PERMANENT and record.attempts == 1, (name, record)
        assert message in record.error, (name, record.error)
    gen.save(gen.halves((40, 20)), image_root / "fine.png")
    assert (
        resize.delay(source_path="fine.png", dest_path="fine-out.png", width=20).get(TIMEOUT)[
            "height"
        ]
        == 10
    )
    assert not (image_root / "o").exists()


def test_a_chain_feeds_each_result_to_the_next_step(celery_worker: Any, image_root: Path) -> None:
    gen.save(gen.photo((400, 300)), image_root / "c.jpg")
    workflow = chain(
        resize.s(source_path="c.jpg", dest_path="step1.png", width=200),
        watermark.s(dest_path="step2.png", text="(c)", color="red", opacity=1.0),
        compress.s(dest_path="step3.webp", quality=60),
    )
    final = workflow.apply_async().get(TIMEOUT)
    assert final["path"] == "step3.webp" and (final["width"], final["height"]) == (200, 150)
    with pytest.raises(ValidationError, match="image:compress"):
        chain(
            resize.s(source_path="c.jpg", dest_path="a.png", width=20),
            compress.s(dest_path="b.png", quality=5),
        ).apply_async()


def test_a_transient_storage_error_is_retried(
    celery_worker: Any, image_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen.save(gen.halves((40, 20)), image_root / "in.png")
    real_write = LocalStorage.write
    calls: list[str] = []

    def flaky_write(
        self: LocalStorage, path: str, data: bytes, argument: str = "dest_path"
    ) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise TransientError("storage error on 'out.png': No space left on device")
        real_write(self, path, data, argument)

    monkeypatch.setattr(LocalStorage, "write", flaky_write)
    result = resize.delay(source_path="in.png", dest_path="out.png", width=20).get(TIMEOUT)
    assert result["width"] == 20 and calls == ["out.png", "out.png"]
    assert Image.open(image_root / "out.png").size == (20, 10)
