"""A plain task's headers encoded from pre-encoded text: kombu's bytes, or no answer at all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from project import app
from project.broker.queues import PUBLISHED_AT_HEADER
from project.enqueue.headers import HeaderTemplate
from project.enqueue.messages import celery_message, json_encoder

encode = json_encoder()


def _template() -> dict[str, Any]:
    headers, _, _ = celery_message(app, "tests.add", "template-id", (), {}, {})
    return headers


def _plain(template: dict[str, Any], task_id: str = "c8584de6-0000") -> dict[str, Any]:
    """The headers of one task as RouteMessages.message and the kit's stamp leave them."""
    headers = template.copy()
    headers["id"] = headers["root_id"] = task_id
    headers["timelimit"] = list(template["timelimit"])
    headers["argsrepr"], headers["kwargsrepr"] = "(1, 'é\"\\n')", "{'x': [1.5, None]}"
    headers["stamps"] = {}
    headers[PUBLISHED_AT_HEADER] = time.time()
    return headers


def test_a_plain_tasks_headers_are_kombus_json_of_them() -> None:
    template = _template()
    headers = _plain(template, task_id="ü-id \u2028")
    assert HeaderTemplate(template, encode).encode(headers) == encode(headers)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda headers: headers.__setitem__(key, value)


@pytest.mark.parametrize(
    "change",
    [
        _set("retries", False),  # equal to 0, encodes as false
        _set("ignore_result", 0),
        _set("origin", "other@host"),
        _set("traceparent", "00-abc-def-01"),  # a key added (telemetry, a caller's headers)
        _set("stamps", {"a": ["b"]}),
        _set("timelimit", [360.0, 300]),
        _set("argsrepr", None),
        _set(PUBLISHED_AT_HEADER, 1),  # not a float
        _set(PUBLISHED_AT_HEADER, float("nan")),
        lambda headers: headers.pop("argsrepr"),
        lambda headers: headers.__setitem__("lang", headers.pop("lang")),  # moved to the end
    ],
    ids=[
        "retries-false",
        "ignore-result-0",
        "origin",
        "added-key",
        "stamps",
        "float-limit",
        "argsrepr-none",
        "int-time",
        "nan-time",
        "missing-key",
        "reordered",
    ],
)
def test_headers_a_receiver_changed_get_no_answer(change: Callable[[dict[str, Any]], None]) -> None:
    template = _template()
    headers = _plain(template)
    change(headers)
    assert HeaderTemplate(template, encode).encode(headers) is None


def test_the_template_is_not_changed_by_encoding() -> None:
    template = _template()
    before = dict(template)
    HeaderTemplate(template, encode).encode(_plain(template))
    assert template == before and PUBLISHED_AT_HEADER not in template
