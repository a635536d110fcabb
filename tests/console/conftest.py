"""The console under test: in this process on a free port (handlers, API, auth), or as a
real ``kit web`` subprocess (the browser test)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from project.console.app import context_for, make_app
from project.console.settings import ConsoleSettings
from project.up.redis_server import free_port
from tests.support.polling import eventually
from tests.support.workers import ROOT

USER, PASSWORD = "operator", "s3cret-console"
AUTH = f"{USER}:{PASSWORD}"
IMPORTS = "tests.support.tasks,tests.console.tasks"


def basic(auth: str = AUTH) -> str:
    return "Basic " + base64.b64encode(auth.encode()).decode()


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Any = field(default_factory=dict)  # case-insensitive (an email.message)

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str = "GET",
    *,
    auth: str | None = AUTH,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Reply:
    """One HTTP request; redirects are not followed (a form's 303 is its answer)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    req = urllib.request.Request(url, method=method, data=data)
    if auth is not None:
        req.add_header("Authorization", basic(auth))
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    if method == "POST" and data is None:
        req.data = b""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as response:
            return Reply(int(response.status), response.read(), response.headers)
    except urllib.error.HTTPError as error:
        return Reply(int(error.code), error.read(), error.headers)
    except OSError:  # nothing listens (yet)
        return Reply(0, b"")


class InProcessConsole:
    """The console's Tornado application on its own loop in a thread of the test."""

    def __init__(self, app: Any, settings: ConsoleSettings) -> None:
        self.context = context_for(app, settings, ((USER, PASSWORD),))
        self.application: tornado.web.Application = make_app(self.context)
        self.base = f"http://127.0.0.1:{settings.port}"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings.port,), daemon=True)
        self._thread.start()
        assert self._started.wait(30), "the console did not start"

    def _run(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> None:
            self._server = self.application.listen(port, address="127.0.0.1")

        self._loop.run_until_complete(listen())
        # Started once run_forever runs: a stop queued earlier would end run_until_complete.
        self._loop.call_soon(self._started.set)
        self._loop.run_forever()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.context.executor.shutdown(wait=False)


@pytest.fixture
def console(kit_app: Any) -> Iterator[InProcessConsole]:
    server = InProcessConsole(kit_app, ConsoleSettings(port=free_port()))
    yield server
    server.stop()


@pytest.fixture
def read_only_console(kit_app: Any) -> Iterator[InProcessConsole]:
    server = InProcessConsole(kit_app, ConsoleSettings(port=free_port(), read_only=True))
    yield server
    server.stop()


class KitWeb:
    """A real ``kit web`` subprocess, its output in a file, ready once it answers."""

    def __init__(self, directory: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"kit-web-{self.port}.log"
        full = dict(os.environ)
        full.update(
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), full.get("PYTHONPATH", "")) if p),
            PYTHONUNBUFFERED="1",
            KIT_IMPORTS=IMPORTS,
            KIT_WEB_PORT=str(self.port),
            KIT_WEB_BASIC_AUTH=AUTH,
        )
        full.update(env)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "project.cli", "web"],
                cwd=ROOT,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        eventually(
            lambda: (
                self.process.poll() is not None
                or request(f"{self.base}/api/queues", auth=None).status == 401
            ),
            60,
        )
        assert self.process.poll() is None, self.output

    @property
    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
