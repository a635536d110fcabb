"""Flower, checked as a person would: a real headless browser logs in, finds the worker and a
task this test ran, and reads the three queues' lengths on the Broker tab; screenshots are
kept; without credentials the page is refused."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException

from project.broker.pause import pause
from project.up.redis_server import free_port
from tests.support.browser import ensure_chromium, headless_chrome
from tests.support.polling import eventually
from tests.support.workers import ROOT, CeleryProcess

AUTH = "operator:s3cret-flower"
ARTIFACTS = ROOT / "test-artifacts"


def _status(url: str, auth: str | None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _api(base: str, path: str) -> str:
    request = urllib.request.Request(f"{base}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def _queue_lengths(driver: Any) -> dict[str, str]:
    """Queue name to its Messages cell, as the Broker tab's table shows them."""
    from selenium.webdriver.common.by import By

    lengths = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#queue-table tbody tr"):
        cells = [
            c.get_attribute("textContent").strip() for c in row.find_elements(By.TAG_NAME, "td")
        ]
        if len(cells) > 1:
            lengths[cells[0]] = cells[1]
    return lengths


@pytest.mark.e2e
def test_flower_shows_the_worker_and_the_task_to_a_logged_in_browser(
    start_worker: Any, redis: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.tasks import add

    ensure_chromium()
    worker = start_worker(concurrency=1)
    port = free_port()
    flower = CeleryProcess(
        ["flower", f"--port={port}", "--address=127.0.0.1"],
        env={
            "FLOWER_BASIC_AUTH": AUTH,
            "FLOWER_PERSISTENT": "True",
            "FLOWER_DB": str(tmp_path / "flower.db"),
        },
    )
    base = f"http://127.0.0.1:{port}"
    driver: Any = None
    try:
        eventually(lambda: _status(f"{base}/healthcheck", None) == 200, 60)
        assert _status(f"{base}/workers", None) == 401

        # Flower answers before its event receiver is connected: a task finished before then
        # is never shown, and one running as it connects is shown without the events it
        # missed (its name comes with task-received). Run tasks until Flower has seen one
        # from the start, name and all.
        def seen_by_flower() -> Any:
            result = add.delay(20, 22)
            assert result.get(timeout=30) == 42
            try:
                info = f"/api/task/info/{result.id}"
                eventually(lambda: '"name": "tests.add"' in _api(base, info), 5)
            except AssertionError:
                return None
            return result

        result = eventually(seen_by_flower, 90, interval=0)

        driver = headless_chrome()
        driver.execute_cdp_cmd("Network.enable", {})
        token = base64.b64encode(AUTH.encode()).decode()
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
        )
        node = worker.nodename.replace("%h", "")
        driver.get(f"{base}/workers")
        WebDriverWait(driver, 60).until(lambda d: node in d.page_source)
        driver.get(f"{base}/tasks")
        # Flower fills a row's columns as the task's events arrive: wait for id and name both,
        # reloading now and then. Only a page that finished loading its table is reloaded: a
        # reload on every poll cancelled the table's request on a loaded machine, every time.
        reloaded = [time.monotonic()]

        def shows_the_task(d: Any) -> bool:
            if result.id in d.page_source and "tests.add" in d.page_source:
                return True
            idle = "return document.readyState === 'complete' && !(window.jQuery && jQuery.active)"
            if time.monotonic() - reloaded[0] > 5 and d.execute_script(idle):
                d.refresh()
                reloaded[0] = time.monotonic()
            return False

        try:
            WebDriverWait(driver, 60).until(shows_the_task)
        except TimeoutException:
            known = _api(base, f"/api/task/info/{result.id}")
            raise AssertionError(f"Flower's page never showed the task; API: {known}") from None
        assert "tests.add" in driver.find_element(By.TAG_NAME, "body").text
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "flower-tasks.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        driver.get(f"{base}/workers")
        WebDriverWait(driver, 60).until(lambda d: node in d.page_source)
        driver.save_screenshot(str(ARTIFACTS / "flower-workers.png"))

        # The Broker tab: 1, 2 and 3 messages wait in the paused queues, at priorities 0 and 9
        # (two of kombu's lists per queue), and Flower reads their lengths.
        for queue in ("critical", "default", "low"):
            pause(redis, queue)
        for queue, waiting in (("critical", 1), ("default", 2), ("low", 3)):
            for n in range(waiting):
                add.apply_async((n, n), queue=queue, priority=n % 2 * 9)
        expected = {"critical": "1", "default": "2", "low": "3"}
        driver.get(f"{base}/broker")
        WebDriverWait(driver, 60).until(lambda d: _queue_lengths(d) == expected or d.refresh())
        assert "redis://" in driver.find_element(By.CLASS_NAME, "broker-url").text
        driver.save_screenshot(str(ARTIFACTS / "flower-broker.png"))
        api = json.loads(_api(base, "/api/queues/length"))
        assert {q["name"]: q["messages"] for q in api["active_queues"]} == {
            "critical": 1,
            "default": 2,
            "low": 3,
        }
    finally:
        if driver is not None:
            driver.quit()
        flower.stop()
