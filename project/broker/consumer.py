"""A worker consumer that archives the messages it refuses instead of dropping them, and
publishes its task events in batches (:mod:`project.broker.events`).

Celery's consumer logs and discards a message it will not run: a pickled (non-JSON) body, a
malformed one, or a task name this worker does not know; a JSON body of the wrong shape even
stops the worker. The kit refuses each such message and keeps serving, and keeps each in the
archive with its raw body (never decoded unless it is JSON), so nothing sent is silently lost
and an operator can inspect it, or requeue it once the task is deployed.

Selected with Celery's ``worker_consumer`` setting.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer as CeleryConsumer
from vine import promise

from project.broker.events import EventBatching
from project.lifecycle.kit import kit_of
from project.retries.archive import ArchivedTask, Reason

__all__ = ["Consumer"]

logger = logging.getLogger(__name__)

_JSON = "application/json"


class Consumer(EventBatching, CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer, refusing bad messages into the archive, its task events batched
    (:class:`~project.broker.events.EventBatching`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.event_flush_interval = kit_of(self.app).settings.broker.event_flush_interval

    def stop(self) -> None:
        self.flush_buffered_events()
        super().stop()

    def shutdown(self) -> None:
        self.flush_buffered_events()
        super().shutdown()

    def create_task_handler(self, promise: Any = promise) -> Any:
        handler = super().create_task_handler(promise)

        def on_task_received(message: Any) -> Any:
            try:
                return handler(message)
            except (ValueError, TypeError, AttributeError, IndexError) as exc:
                # A JSON body of the wrong shape (not [args, kwargs, embed]) fails while Celery
                # builds the request, outside its own error handling, and would stop the worker
                # ("Unrecoverable error"). Refuse that one message instead.
                error = InvalidTaskError(f"malformed task message: {type(exc).__name__}: {exc}")
                return self.on_invalid_task(None, message, error)

        return on_task_received

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _archive_refused(self.app, message, exc)
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        _archive_refused(self.app, message, exc)
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        _archive_refused(self.app, message, ValueError("message is not a Celery task"))
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        _archive_refused(self.app, message, exc)
        super().on_unknown_task(body, message, exc)


def _archive_refused(app: Any, message: Any, exc: BaseException) -> None:
    """Archive a refused message; never raises (the consumer must keep serving)."""
    try:
        record = _refused_record(message, exc)
        kit_of(app).archive().add(record)
        logger.error(
            "refused message %s (%s, %s) archived: %s",
            record.id,
            record.task,
            record.content_type,
            record.error,
        )
    except Exception:
        logger.exception("could not archive a refused message")


def _refused_record(message: Any, exc: BaseException) -> ArchivedTask:
    headers = message.headers or {}
    delivery = message.delivery_info or {}
    properties = message.properties or {}
    body: bytes = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if message.content_type == _JSON:
        try:  # protocol 2 body: [args, kwargs, embed]; only JSON is ever decoded
            decoded = json.loads(body)
            args, kwargs = list(decoded[0]), dict(decoded[1])
        except (ValueError, TypeError, IndexError, KeyError):
            pass
    return ArchivedTask(
        id=str(headers.get("id") or properties.get("correlation_id") or uuid.uuid4()),
        task=str(headers.get("task") or "unknown"),
        reason=Reason.REFUSED,
        error_type=type(exc).__qualname__,
        error=str(exc),
        queue=delivery.get("routing_key"),
        args=args,
        kwargs=kwargs,
        attempts=0,
        priority=properties.get("priority"),
        root_id=headers.get("root_id"),
        parent_id=headers.get("parent_id"),
        content_type=message.content_type,
        body=base64.b64encode(body).decode("ascii"),
    )
