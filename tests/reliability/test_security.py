"""Security checks: TLS to Redis with a password, end to end, and no secret in what the kit
prints or exports (worker logs, spans, ``kit stats``, configuration errors).

The worker's refusal of pickle and yaml is in the bad-input catalogue (test_bad_input.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from project.application import create_app
from project.errors import ConfigError
from project.settings import load_settings
from tests.support.cli import run_kit
from tests.support.otlp import OTLPReceiver, telemetry_env
from tests.support.tls import TLSRedisServer, make_certificates

from .conftest import Ledger

SECRET = "s3cret-Redis-pw-7781"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TLSRedisServer]:
    certificates = make_certificates(tmp_path / "certs")
    server = TLSRedisServer(tmp_path / "redis", certificates, password=SECRET)
    server.start()
    yield server
    server.kill()


def _env(server: TLSRedisServer) -> dict[str, str]:
    return {"REDIS_URL": server.url, "KIT_REDIS_TLS_CA_FILE": str(server.certificates.ca)}


def _kit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, env=env, timeout=120)


def test_the_server_speaks_only_verified_tls(tls_redis: TLSRedisServer) -> None:
    plain = redis_py.Redis(host="127.0.0.1", port=tls_redis.port, password=SECRET, socket_timeout=2)
    with pytest.raises(redis_py.ConnectionError):
        plain.ping()  # no plain-text listener: TLS is really in use below
    unverified = redis_py.Redis.from_url(tls_redis.url, ssl_cert_reqs="required", socket_timeout=2)
    with pytest.raises(redis_py.ConnectionError, match="certificate verify failed"):
        unverified.ping()  # the system CAs do not know the test CA: verification is on


@pytest.mark.e2e
def test_tasks_run_over_tls_with_a_password_and_no_secret_leaks(
    tls_redis: TLSRedisServer, start_worker: Any, ledger: Ledger
) -> None:
    receiver = OTLPReceiver().start()
    try:
        env = _env(tls_redis)
        worker = start_worker(concurrency=1, env={**env, **telemetry_env(receiver)})
        app = create_app(load_settings(env))
        results = [app.send_task("tests.add", (i, i)) for i in range(20)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(20)]
        failed = app.send_task("tests.permanent", ("boom",))  # archived, with its error text
        with pytest.raises(Exception, match="does not exist"):
            failed.get(timeout=60)
        ledger.record(21, 21, 0, 0)

        stats = _kit("stats", env=env)
        archived = _kit("archived", "ls", env=env)
        assert stats.returncode == 0 and archived.returncode == 0, stats.stderr + archived.stderr
        spans = receiver.wait_for_spans(
            lambda s: len([x for x in s if x.name.startswith("run/")]) >= 21
        )
        worker.stop()
    finally:
        receiver.stop()

    exported = " ".join(
        f"{s.name} {s.attributes} {s.resource} {s.events} {s.status_message}" for s in spans
    )
    for where, text in {
        "worker log": worker.output,
        "spans": exported,
        "kit stats": stats.stdout + stats.stderr,
        "kit archived ls": archived.stdout + archived.stderr,
    }.items():
        assert SECRET not in text, where
    assert "rediss://:**@127.0.0.1" in worker.output  # the banner shows the URL, masked


def test_a_malformed_redis_url_error_does_not_print_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:notaport/0"})
    assert SECRET not in str(refused.value)
    assert "REDIS_URL" in str(refused.value)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    with pytest.raises(ConfigError, match="KIT_REDIS_TLS_KEY_FILE"):
        load_settings({"KIT_REDIS_TLS_CERT_FILE": str(certificates.cert)})
    with pytest.raises(ConfigError, match="readable file"):
        load_settings({"KIT_REDIS_TLS_CA_FILE": str(tmp_path / "missing.pem")})
