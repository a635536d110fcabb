"""The bad-input catalogue: hostile inputs across the catalog, each refused clearly.

Two ways in, as in production. A producer using the kit's tasks gets the error at enqueue and
nothing is published. A message sent around those checks (another client, an old producer, a
hand-made message) reaches a real worker, which archives it at once as a permanent failure or
a refused message: no retry, no crash, no blocked queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu.exceptions import EncodeError

import tasks.email.tasks
import tasks.images.tasks
import tasks.maintenance.tasks  # noqa: F401
import tests.support.tasks  # noqa: F401 - registers tests.add and tests.mark here too
from project import ValidationError, enqueue_grouped
from project.broker.queues import queue_keys
from project.lifecycle.kit import default_kit
from project.retries.archive import Archive, Reason
from tests.support import images as gen
from tests.support.polling import eventually

from .conftest import Ledger

OK_MAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def _resize(**changes: Any) -> dict[str, Any]:
    return {"source_path": "in.png", "dest_path": "out.png", "width": 10, **changes}


def _task(name: str) -> Any:
    from project import app

    return app.tasks[name]


@dataclass(frozen=True)
class AtEnqueue:
    """A call the producer makes; it must raise ``error`` matching ``message``."""

    id: str
    call: Callable[[], Any]
    message: str
    error: type[Exception] = ValidationError


def _apply(name: str, *args: Any, **options: Any) -> Callable[[], Any]:
    kwargs = options.pop("kwargs", None)
    return lambda: _task(name).apply_async(args or None, kwargs, **options)


AT_ENQUEUE = [
    AtEnqueue("image wrong type", _apply("image:resize", kwargs=_resize(width="wide")), "width"),
    AtEnqueue(
        "image missing field", _apply("image:resize", kwargs={"source_path": "a.png"}), "dest_path"
    ),
    AtEnqueue(
        "image path escape", _apply("image:resize", kwargs=_resize(source_path="../x.png")), "'..'"
    ),
    AtEnqueue(
        "image absolute path",
        _apply("image:resize", kwargs=_resize(source_path="/etc/passwd")),
        "absolute",
    ),
    AtEnqueue(
        "image NUL in path", _apply("image:resize", kwargs=_resize(dest_path="o\x00.png")), "NUL"
    ),
    AtEnqueue("image huge size", _apply("image:resize", kwargs=_resize(width=10**7)), "accepts"),
    AtEnqueue("image unknown argument", _apply("image:resize", kwargs=_resize(widht=5)), "unknown"),
    AtEnqueue(
        "watermark text and image",
        _apply(
            "image:watermark",
            kwargs={
                "source_path": "a.png",
                "dest_path": "b.png",
                "text": "x",
                "watermark_path": "w.png",
            },
        ),
        "exactly one of",
    ),
    AtEnqueue(
        "thumbnail no sizes",
        _apply(
            "image:thumbnail", kwargs={"source_path": "a.png", "dest_path": "t.png", "sizes": []}
        ),
        "sizes",
    ),
    AtEnqueue(
        "mail header injection",
        _apply("email:deliver", kwargs={**OK_MAIL, "subject": "hi\r\nBcc: x@example.org"}),
        "CR or LF",
    ),
    AtEnqueue(
        "mail bad address",
        _apply("email:deliver", kwargs={**OK_MAIL, "to": "nobody"}),
        "not a valid e-mail address",
    ),
    AtEnqueue(
        "mail huge body",
        _apply("email:deliver", kwargs={**OK_MAIL, "body": "x" * 20_000_000}),
        "longer than",
    ),
    AtEnqueue(
        "mail attachment escape",
        _apply("email:deliver", kwargs={**OK_MAIL, "attachments": ["../etc/passwd"]}),
        "'..'",
    ),
    AtEnqueue("mail wrong type", _apply("email:deliver", kwargs={**OK_MAIL, "to": 42}), "to"),
    AtEnqueue("cleanup negative retention", _apply("cleanup:old_data", -5), "at least 1"),
    AtEnqueue("cleanup wrong type", _apply("cleanup:old_data", "forever"), "number of days"),
    AtEnqueue("priority 99", _apply("tests.add", 1, 2, priority=99), "priority"),
    AtEnqueue("priority -1", _apply("tests.add", 1, 2, priority=-1), "priority"),
    AtEnqueue("negative countdown", _apply("tests.add", 1, 2, countdown=-10), "countdown"),
    AtEnqueue("NaN countdown", _apply("tests.add", 1, 2, countdown=float("nan")), "countdown"),
    AtEnqueue("wrong arity", _apply("tests.add", 1), "argument", TypeError),
    AtEnqueue(
        "arguments not JSON", _apply("tests.add", {1, 2}, 3), "not JSON serializable", EncodeError
    ),
    AtEnqueue(
        "grouped item not JSON",
        lambda: enqueue_grouped("tests.collect", object(), group="g"),
        "must be JSON",
    ),
]


def _waiting(redis: Any) -> int:
    return sum(redis.llen(k) for q in ("critical", "default", "low") for k in queue_keys(q))


@pytest.mark.parametrize("case", AT_ENQUEUE, ids=[c.id for c in AT_ENQUEUE])
def test_a_hostile_call_is_refused_at_enqueue_and_nothing_is_published(
    case: AtEnqueue, redis: Any
) -> None:
    with pytest.raises(case.error, match=case.message):
        case.call()
    assert _waiting(redis) == 0 and redis.keys("kit:*") == []


# -- around the checks: what a worker must survive ---------------------------------------------
# Sent as a producer without the kit would (Celery's own send_task, no checks by name).


def _send(name: str, *args: Any, **kwargs: Any) -> str:
    from project import app

    return str(Celery.send_task(app, name, args or None, kwargs or None).id)


def _raw(body: bytes, content_type: str, task: str | None = "tests.add") -> str:
    """A hand-made message on ``default``: any body, any content type, Celery's headers."""
    from project import app

    task_id = str(uuid.uuid4())
    headers = {"id": task_id, "task": task, "lang": "py", "argsrepr": "", "kwargsrepr": ""}
    queue = app.amqp.queues["default"]
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers if task else {},
        )
    return task_id


def _pickled() -> str:
    return str(_task("tests.mark").apply_async(["pickled"], serializer="pickle").id)


def _yaml() -> str:
    return str(_task("tests.mark").apply_async(["yaml"], serializer="yaml").id)


def _worker_cases() -> dict[str, Callable[[], str]]:
    """name -> a function that publishes the message and returns its task id."""
    return {
        "not JSON at all": lambda: _raw(b"\x80\x81 not json {", "application/json"),
        "pickle content type": _pickled,
        "yaml content type": _yaml,
        "unknown task name": lambda: _send("nothing:here", 1),
        "JSON but not a task body": lambda: _raw(
            json.dumps("just a string").encode(), "application/json"
        ),
        "image path escape": lambda: _send("image:resize", **_resize(source_path="../x.png")),
        "image symlink escape": lambda: _send("image:resize", **_resize(source_path="link.png")),
        "decompression bomb": lambda: _send("image:resize", **_resize(source_path="bomb.png")),
        "truncated image": lambda: _send("image:resize", **_resize(source_path="cut.jpg")),
        "missing image": lambda: _send("image:resize", **_resize(source_path="gone.png")),
        "image wrong type": lambda: _send("image:resize", **_resize(width="wide")),
        "mail header injection": lambda: _send(
            "email:deliver", **{**OK_MAIL, "to": "a@example.com\r\nBcc: x@example.org"}
        ),
        "mail bad address": lambda: _send("email:deliver", **{**OK_MAIL, "to": "nobody"}),
        "cleanup wrong type": lambda: _send("cleanup:old_data", "forever"),
        "wrong arity": lambda: _send("tests.add", 1),
    }


def _hostile_files(root: Path, outside: Path) -> None:
    (root / "bomb.png").write_bytes(gen.png_header_only(20_000, 20_000))
    (root / "cut.jpg").write_bytes(gen.jpeg_bytes(gen.photo((300, 200)))[:2000])
    gen.save(gen.halves((20, 20)), outside / "secret.png")
    (root / "link.png").symlink_to(outside / "secret.png")


@pytest.mark.e2e
def test_hostile_messages_are_archived_at_once_and_the_worker_keeps_serving(
    start_worker: Any, redis: Any, tmp_path: Path, ledger: Ledger
) -> None:
    root, outside = tmp_path / "images", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    _hostile_files(root, outside)
    worker = start_worker(
        concurrency=2,
        env={"KIT_IMAGE_STORAGE_ROOT": str(root), "KIT_IMAGE_MAX_PIXELS": "4000000"},
    )
    ids = {name: publish() for name, publish in _worker_cases().items()}
    archive = Archive(redis, default_kit().settings.retries.archive_max_size)

    def unarchived() -> list[str]:
        return [name for name, task_id in ids.items() if archive.get(task_id) is None]

    deadline = time.monotonic() + 60
    while (missing := unarchived()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert missing == [], worker.output[-6000:]
    records = {name: record for name, i in ids.items() if (record := archive.get(i)) is not None}
    problems = [
        (name, r.reason, r.attempts, r.error)
        for name, r in records.items()
        if r.reason not in (Reason.PERMANENT, Reason.REFUSED, Reason.UNEXPECTED)
        or r.attempts > 1
        or not r.error
    ]
    assert problems == []
    assert str(outside) not in "".join(r.error for r in records.values())

    # Nothing retrying, nothing stuck, nothing leaked; the same worker still serves.
    assert _task("tests.add").delay(2, 2).get(timeout=30) == 4
    assert worker.process.poll() is None
    assert _waiting(redis) == 0 and redis.zcard("kit:scheduled") == 0
    # Late acknowledgement: the last task's message is acknowledged just after its result.
    eventually(lambda: redis.hlen("unacked") == 0, 10)
    assert redis.get("test:mark:pickled") is None and redis.get("test:mark:yaml") is None
    assert not (root / "out.png").exists()
    sent = len(AT_ENQUEUE) + len(ids)
    ledger.record(sent, sent, 0, 0)  # every input refused: at enqueue or in the archive
