"""Real parts for the deploy/ tests: a Prometheus server, and a producer process pointed at
the Redis a test chooses (the test process's own ``project.app`` is bound to the session's
Redis, read once at import)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from project.broker.queues import PUBLISHED_AT_HEADER
from tests.deploy.validators import ROOT

START_TIMEOUT = 60.0  # seconds
PRODUCER_TIMEOUT = 120.0  # seconds: a cold producer imports the whole kit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _subprocess_env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "OTEL_SDK_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }


def publish(redis_url: str, *specs: str) -> None:
    """Publish tasks by name through the kit's own app (``python -m tests.deploy.producer``),
    each spec ``queue=task.name*count``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.producer", *specs],
        env=_subprocess_env(redis_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PRODUCER_TIMEOUT,
    )
    assert done.returncode == 0, f"producer {specs}: {done.stdout}{done.stderr}"


def fill_queue(client: Any, queue: str, total: int, published_ago: float = 0.0) -> None:
    """Make the one message waiting in ``queue`` ``total`` messages: copies of it (a real
    publish by the kit) under new task ids. Publishing 10,000 tasks one by one takes longer
    than the rest of a test; a copy is the same bytes a publish would write, in the same list.
    ``published_ago``: seconds to move every publish time back (a backlog an hour old, without
    waiting an hour)."""
    keys = [k for k in client.scan_iter(match=f"{queue}*") if client.type(k) == b"list"]
    assert len(keys) == 1 and client.llen(keys[0]) == 1, f"not one message in {queue}: {keys}"
    message = json.loads(client.lindex(keys[0], 0))
    message["headers"][PUBLISHED_AT_HEADER] -= published_ago
    client.lset(keys[0], 0, json.dumps(message))
    with client.pipeline(transaction=False) as pipe:
        for _ in range(total - 1):
            task_id = str(uuid.uuid4())
            message["headers"]["id"] = task_id
            message["properties"]["correlation_id"] = task_id
            message["properties"]["delivery_tag"] = str(uuid.uuid4())
            pipe.lpush(keys[0], json.dumps(message))
        pipe.execute()


class PrometheusError(AssertionError):
    pass


class PrometheusServer:
    """Debian's ``prometheus`` on 127.0.0.1:``port`` with ``config``, its data in
    ``directory``; stopped (and its log kept for failures) on leaving the ``with`` block."""

    def __init__(self, binary: str, config: dict[str, Any], directory: Path, port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.url = f"http://127.0.0.1:{port}"
        self.log = directory / "prometheus.log"
        self._log_handle = self.log.open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> PrometheusServer:
        from tests.support.polling import eventually

        eventually(self._ready, timeout=START_TIMEOUT, interval=0.1)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_handle.close()

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise PrometheusError(f"prometheus exited: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self, characters: int = 3000) -> str:
        return self.log.read_text()[-characters:]

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a ``/api/v1`` answer; PrometheusError with its error otherwise."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with Prometheus's reason
            answer = json.loads(exc.read() or b"{}")
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (or scalar, as a one-element list)."""
        data = self.api("query", query=expr)
        result = data["result"]
        return [{"metric": {}, "value": result}] if data["resultType"] == "scalar" else result

    def alerts(self, name: str, state: str) -> list[dict[str, str]]:
        """Labels of the ``name`` alerts in ``state`` (pending or firing) right now."""
        return [
            a["labels"]
            for a in self.api("alerts")["alerts"]
            if a["labels"]["alertname"] == name and a["state"] == state
        ]
