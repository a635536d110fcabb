"""email:deliver in a real ``celery -A project worker`` subprocess, configured by environment,
exporting to a real OTLP receiver: domains and keyed address hashes on spans, never an address
(nor an unkeyed hash), and per-domain counters bounded by the allow-list."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from project.lifecycle.kit import default_kit
from project.retries.archive import Reason
from tasks.email.tasks import deliver_email
from tests.support.otlp import OTLPReceiver, Span
from tests.support.polling import eventually
from tests.support.smtp import SMTPServer

TIMEOUT = 60
HASH_KEY = "test-telemetry-key"


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


def _smtp_env(smtp_server: SMTPServer, receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "noreply@kit.example",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


def _values(span: Span) -> Iterator[Any]:
    yield from span.attributes.values()
    for _, attributes in span.events:
        yield from attributes.values()
    yield span.status_message


@pytest.mark.e2e
def test_a_subprocess_worker_sends_and_reports_domains_never_addresses(
    receiver: OTLPReceiver, smtp_server: SMTPServer, start_worker: Any
) -> None:

    worker = start_worker(
        env=_smtp_env(
            smtp_server,
            receiver,
            KIT_TELEMETRY_HASH_KEY=HASH_KEY,
            KIT_TELEMETRY_EMAIL_DOMAINS="example.com",
        )
    )
    try:
        sent = deliver_email.delay(to="Ada <ada@example.com>", subject="hi", body="b")
        assert sent.get(TIMEOUT)["status"] == "sent"
        smtp_server.refuse("bob@example.org", "550 5.1.1 <bob@example.org>: no such user")
        refused = deliver_email.delay(to="bob@example.org", subject="hi", body="b")
        archive = default_kit().archive()
        record = eventually(lambda: archive.get(refused.id), TIMEOUT)
        assert record.reason == Reason.PERMANENT
        assert "550 5.1.1 <bob@example.org>: no such user" in record.error  # kept for operators

        def two_runs(spans: list[Span]) -> bool:
            return len([s for s in spans if s.name == "run/email:deliver"]) >= 2

        runs = receiver.wait_for_spans(two_runs, TIMEOUT)
        eventually(lambda: receiver.total("kit.email.failed") >= 1, TIMEOUT)
    finally:
        worker.stop()
    by_id = {s.attributes.get("task.id"): s for s in runs if s.name == "run/email:deliver"}
    ok, bad = by_id[sent.id], by_id[refused.id]
    assert ok.attributes["email.recipient.domains"] == ["example.com"]
    assert ok.attributes["email.recipient.hashes"] == [
        hmac.new(HASH_KEY.encode(), b"ada@example.com", hashlib.sha256).hexdigest()
    ]
    assert ok.attributes["email.outcome"] == "sent"
    assert bad.attributes["email.recipient.domains"] == ["example.org"]
    assert bad.attributes["email.outcome"] == "failed" and bad.is_error
    for span in runs:
        for value in _values(span):
            assert "ada@" not in str(value) and "bob@" not in str(value), (span.name, value)
    assert receiver.total("kit.email.sent", **{"email.domain": "example.com"}) == 1
    assert receiver.total("kit.email.sent", **{"email.domain": "other"}) == 0
    # example.org is not in KIT_TELEMETRY_EMAIL_DOMAINS: counted, not named.
    assert receiver.total("kit.email.failed", **{"email.domain": "other"}) == 1
    assert receiver.total("kit.email.failed", **{"email.domain": "example.org"}) == 0
    assert receiver.total("kit.email.retried") == 0
    assert len(smtp_server.received) == 1


@pytest.mark.e2e
def test_without_a_key_no_hash_and_a_thousand_domains_make_a_bounded_set_of_series(
    receiver: OTLPReceiver, smtp_server: SMTPServer, start_worker: Any
) -> None:
    worker = start_worker(env=_smtp_env(smtp_server, receiver))
    domains = [f"d{i}.example" for i in range(1000)]
    try:
        results = [
            deliver_email.delay(
                to=[f"user{i}@{d}" for i, d in enumerate(domains[n : n + 100], n)],
                subject="hi",
                body="b",
            )
            for n in range(0, 1000, 100)
        ]
        for result in results:
            assert result.get(TIMEOUT)["status"] == "sent"
        eventually(lambda: receiver.total("kit.email.sent") >= 10, TIMEOUT)
        runs = receiver.wait_for_spans(
            lambda spans: len([s for s in spans if s.name == "run/email:deliver"]) >= 10, TIMEOUT
        )
    finally:
        worker.stop()
    for span in runs:
        if span.name == "run/email:deliver":
            assert "email.recipient.hashes" not in span.attributes  # no key: no hash
            assert span.attributes["email.recipient.count"] == 100
    assert receiver.total("kit.email.sent", **{"email.domain": "other"}) == 10
    # Every metric's series (distinct attribute sets, over all processes) stay few.
    series: dict[str, set[tuple[tuple[str, Any], ...]]] = {}
    for point in receiver.metric_points():
        series.setdefault(point.name, set()).add(tuple(sorted(point.attributes.items())))
    assert series["kit.email.sent"] == {(("email.domain", "other"),)}
    for name, attribute_sets in series.items():
        assert len(attribute_sets) < 20, (name, len(attribute_sets))
