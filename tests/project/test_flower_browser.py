"""Flower, checked as a person would: a real headless browser logs in, finds the worker and a
task this test ran, and a screenshot is kept; without credentials the page is refused."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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


def _api_tasks(base: str) -> str:
    request = urllib.request.Request(f"{base}/api/tasks")
    request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


@pytest.mark.e2e
def test_flower_shows_the_worker_and_the_task_to_a_logged_in_browser(
    start_worker: Any, tmp_path: Path
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
        # is never shown. Run tasks until Flower has seen one.
        def seen_by_flower() -> Any:
            result = add.delay(20, 22)
            assert result.get(timeout=30) == 42
            try:
                eventually(lambda: result.id in _api_tasks(base), 5)
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
        WebDriverWait(driver, 60).until(lambda d: result.id in d.page_source or d.refresh())
        assert "tests.add" in driver.find_element(By.TAG_NAME, "body").text
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "flower-tasks.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        driver.get(f"{base}/workers")
        WebDriverWait(driver, 60).until(lambda d: node in d.page_source)
        driver.save_screenshot(str(ARTIFACTS / "flower-workers.png"))
    finally:
        if driver is not None:
            driver.quit()
        flower.stop()
