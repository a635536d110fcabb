"""What the redaction recognises, and what it must leave alone (ids, timestamps, hashes)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan

from project.telemetry.logs import install_log_correlation
from project.telemetry.redaction import redact_span, redact_text

SECRETS = [
    ("mail to bob@example.com bounced", "bob@example.com"),
    ("cannot reach redis://app:s3cret@cache:6379/0", "s3cret"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "eyJhbGciOiJIUzI1NiJ9"),
    ("login with password=hunter22&user=x", "hunter22"),
    ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
    ("card 4111-1111-1111-1111 declined", "4111-1111-1111-1111"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_each_kind_of_secret_is_replaced(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "task 7c9e6679-7425-40de-944b-e07fc1f90ae7 succeeded in 0.25s",
        "published at 1733050000123456789",  # not a Luhn number
        "hash 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
        "routing_key default",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_log_records_are_redacted_where_they_are_made(caplog: pytest.LogCaptureFixture) -> None:
    install_log_correlation()
    log = logging.getLogger("tests.redaction")
    with caplog.at_level(logging.INFO, logger="tests.redaction"):
        log.info("Task succeeded: %r", "ada@example.com redis://u:pw@h")
        try:
            raise ValueError("card 4111111111111111")
        except ValueError:
            log.exception("Task failed")
    text = caplog.text
    assert "ada@example.com" not in text and ":pw@" not in text
    assert "4111111111111111" not in text
    assert "<card>" in text  # the traceback is kept, redacted


def _ended_span(attributes: dict[str, object], event: str | None = None) -> ReadableSpan:
    events = [] if event is None else [Event("task.retry", {"exception.message": event})]
    return ReadableSpan(name="run/x", attributes=attributes, events=events)  # type: ignore[arg-type]


def test_a_clean_span_is_exported_as_it_is() -> None:
    span = _ended_span({"task.id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "task.attempt": 1})
    assert redact_span(span) is span


def test_secrets_in_span_attributes_and_events_are_replaced() -> None:
    span = _ended_span(
        {"task.queue": "default", "celery.args": ("bob@example.com", 3)},
        event="login with password=hunter22",
    )
    redacted = redact_span(span)
    assert redacted.attributes == {"task.queue": "default", "celery.args": ("<email>", 3)}
    assert redacted.events[0].attributes == {"exception.message": "login with password=<secret>"}


def test_dropped_attributes_leave_the_copy() -> None:
    span = _ended_span({"messaging.destination": "default", "task.queue": "default"})
    assert redact_span(span, frozenset({"messaging.destination"})).attributes == {
        "task.queue": "default"
    }
