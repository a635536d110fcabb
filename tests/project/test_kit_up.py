"""`kit up`: embedded Redis, worker, beat, Flower and the console; an orderly Ctrl-C that loses
nothing."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from project.broker.queues import queue_keys
from project.up.redis_server import RedisServer, free_port
from tests.support.polling import eventually
from tests.support.workers import ROOT


class KitUp:
    """A `kit up` process with output captured to a file (it relays its children's logs).

    It leads a process group of its own, as a shell makes a foreground job: a terminal's
    Ctrl-C is :meth:`ctrl_c`, SIGINT to that whole group."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.log = directory / f"kit-up-{len(list(directory.glob('kit-up-*')))}.log"
        kit = shutil.which("kit") or sys.executable
        args = [kit, "up"] if kit.endswith("kit") else [kit, "-m", "project.cli", "up"]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                args,
                cwd=directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        eventually(lambda: text in self.output or self.process.poll() is not None, timeout)
        assert text in self.output, self.output[-3000:]


@pytest.fixture
def kit_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: kit up embeds Redis
        KIT_STATE_DIR=str(tmp_path / "var"),
        FLOWER_PORT=str(free_port()),
        KIT_WEB_PORT=str(free_port()),
        FLOWER_BASIC_AUTH="admin:correct-horse",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture
def kit_up(tmp_path: Path, kit_env: dict[str, str]) -> Iterator[KitUp]:
    up = KitUp(tmp_path, kit_env)
    up.wait_for("kit: running")
    yield up
    if up.process.poll() is None:
        up.process.kill()
        up.process.wait()


def _app_for(url: str, **env: str) -> Any:
    from project.application import create_app
    from project.settings import load_settings

    return create_app(load_settings({"REDIS_URL": url, **env}))


def _flower_status(port: str, auth: str | None, path: str = "/api/workers") -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.e2e
def test_kit_up_embeds_redis_and_runs_worker_beat_and_flower(
    kit_up: KitUp, kit_env: dict[str, str]
) -> None:
    assert "started an embedded Redis" in kit_up.output
    assert "AOF persistence" in kit_up.output
    app = _app_for(kit_env["REDIS_URL"])
    assert app.send_task("tests.add", args=[19, 23]).get(timeout=60) == 42
    kit_up.wait_for("[beat]")
    assert _flower_status(kit_env["FLOWER_PORT"], kit_env["FLOWER_BASIC_AUTH"]) == 200
    assert _flower_status(kit_env["FLOWER_PORT"], None) == 401
    # The console shares Flower's credentials.
    assert _flower_status(kit_env["KIT_WEB_PORT"], kit_env["FLOWER_BASIC_AUTH"], "/api/cron") == 200
    assert _flower_status(kit_env["KIT_WEB_PORT"], None, "/api/cron") == 401


@pytest.mark.e2e
def test_second_kit_up_says_it_is_running_instead_of_starting_another_beat(
    kit_up: KitUp, tmp_path: Path, kit_env: dict[str, str]
) -> None:
    second = KitUp(tmp_path, kit_env)
    assert second.process.wait(60) == 1
    assert "already running" in second.output
    assert "[beat]" not in second.output


@pytest.mark.e2e
def test_ctrl_c_stops_in_order_and_loses_no_queued_task(
    kit_up: KitUp, kit_env: dict[str, str], tmp_path: Path
) -> None:
    # Long delays sent as plain ETA messages (no durable schedule), which the worker holds.
    app = _app_for(kit_env["REDIS_URL"], KIT_DURABLE_DELAY_THRESHOLD="0")
    with app.producer_or_acquire() as producer:
        for _ in range(20):  # a queue no worker consumes: waits in Redis
            app.send_task("tests.noop", queue="parked", producer=producer)
        for _ in range(10):  # ETA tasks: the worker holds them in memory until due
            app.send_task("tests.noop", countdown=3600, producer=producer)
    client = redis_py.Redis.from_url(kit_env["REDIS_URL"], decode_responses=True)
    eventually(lambda: client.hlen("unacked") == 10, 60)  # the worker holds all ten
    client.close()

    kit_up.ctrl_c()
    assert kit_up.process.wait(120) == 0
    output = kit_up.output
    lines = [line for line in output.splitlines() if line.startswith("kit: stopped")]
    assert [line.split()[2] for line in lines] == ["beat", "flower", "console", "worker", "Redis"]
    # Only kit up saw the terminal's SIGINT: the worker's shutdown found its broker up, and
    # Redis stopped on kit up's SIGTERM, after the others (not on the terminal's SIGINT).
    assert "Traceback" not in output and "Error" not in output, output[-3000:]
    redis_log = (tmp_path / "var" / "redis" / "redis.log").read_text()
    assert "Received SIGTERM" in redis_log and "SIGINT" not in redis_log, redis_log[-2000:]

    # Reopen the embedded Redis from its AOF: every task is still there.
    port = int(kit_env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    with RedisServer(tmp_path / "var" / "redis", port=port, appendonly=True) as server:
        client = redis_py.Redis.from_url(server.url, decode_responses=True)
        assert sum(client.llen(key) for key in queue_keys("parked")) == 20
        waiting = sum(client.llen(key) for key in queue_keys("default"))
        assert waiting + client.hlen("unacked") == 10
        client.close()


def _refusals(output: str) -> list[str]:
    return [line for line in output.splitlines() if "already running" in line]


@pytest.mark.e2e
def test_a_kit_up_on_the_same_redis_from_another_directory_names_the_running_one(
    kit_up: KitUp, tmp_path: Path, kit_env: dict[str, str]
) -> None:
    second = KitUp(tmp_path, {**kit_env, "KIT_STATE_DIR": str(tmp_path / "elsewhere")})
    assert second.process.wait(60) == 1
    assert "Traceback" not in second.output
    [refusal] = _refusals(second.output)  # one line, with who holds the lock and what to do
    assert refusal.startswith("kit: kit up is already running against this Redis")
    assert f"pid {kit_up.process.pid} on this host" in refusal
    assert "stop it first" in refusal and "REDIS_URL" in refusal


@pytest.mark.e2e
def test_a_lock_held_on_another_host_says_when_it_frees(
    private_redis: RedisServer, tmp_path: Path, kit_env: dict[str, str]
) -> None:
    client = redis_py.Redis.from_url(private_redis.url)
    client.set("kit:up:lock", "build-box-7:4242:1796000000:4026531836", px=25_000)
    client.close()
    up = KitUp(tmp_path, {**kit_env, "REDIS_URL": private_redis.url})
    assert up.process.wait(60) == 1
    assert "Traceback" not in up.output
    [refusal] = _refusals(up.output)
    assert "pid 4242 on host build-box-7" in refusal
    assert "if it has crashed, its lock frees within" in refusal
    seconds = int(refusal.rsplit("within ", 1)[1].split()[0])
    assert 0 < seconds <= 25


@pytest.mark.e2e
def test_a_crashed_kit_ups_lock_is_taken_over_at_once_on_the_same_host(
    kit_up: KitUp, tmp_path: Path, kit_env: dict[str, str]
) -> None:
    crashed = kit_up.process.pid
    kit_up.process.kill()  # SIGKILL: its Redis lock stays, in the embedded Redis's AOF too
    kit_up.process.wait()
    probe = redis_py.Redis.from_url(kit_env["REDIS_URL"], socket_connect_timeout=1)

    def old_redis_gone() -> bool:  # its children die with it (PR_SET_PDEATHSIG)
        try:
            probe.ping()
        except redis_py.ConnectionError:
            return True
        return False

    eventually(old_redis_gone, 30)
    probe.close()
    again = KitUp(
        tmp_path, {**kit_env, "FLOWER_PORT": str(free_port()), "KIT_WEB_PORT": str(free_port())}
    )
    try:
        again.wait_for("kit: running", timeout=25)  # well before the lock's 30 s TTL
        assert f"the last kit up (pid {crashed} on this host" in again.output
        assert not _refusals(again.output)
        again.ctrl_c()
        assert again.process.wait(120) == 0
    finally:
        if again.process.poll() is None:
            again.process.kill()
            again.process.wait()
