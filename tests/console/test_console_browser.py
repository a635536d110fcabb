"""The console, used as an operator would: a real headless chromium logs in to a real
``kit web`` beside a real ``celery -A project worker``, reads the three queues' counts, opens
the archive, requeues a task and watches it succeed, pauses a queue and sees a task wait in it;
a second, read-only console offers no action and refuses every write.

With ``SCREENSHOTS_DIR`` set (``SCREENSHOTS_DIR=docs``; not a ``KIT_`` variable: the suite
clears those), the queues page and a task's detail are saved there for the README; they are
always saved under ``test-artifacts/``."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from project.broker.pause import pause
from tests.console.conftest import AUTH, IMPORTS, KitWeb, request
from tests.console.test_access import concrete
from tests.support.browser import ensure_chromium, headless_chrome
from tests.support.polling import eventually
from tests.support.workers import ROOT

ARTIFACTS = ROOT / "test-artifacts"
QUEUES = ("critical", "default", "low")
WAIT = 60  # seconds any one step may take on a loaded machine


def _screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    places = [ARTIFACTS]
    if os.environ.get("SCREENSHOTS_DIR"):
        places.append(Path(os.environ["SCREENSHOTS_DIR"]))
    for place in places:
        shot = place / name
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000


def _cell(driver: Any, queue: str, state: str) -> str:
    from selenium.webdriver.common.by import By

    selector = f'tr[data-queue="{queue}"] td[data-state="{state}"]'
    cell = driver.find_element(By.CSS_SELECTOR, selector)
    return str(cell.text.strip())


def _counts(driver: Any, state: str) -> dict[str, str]:
    return {queue: _cell(driver, queue, state) for queue in QUEUES}


def _refreshed_until(driver: Any, condition: Any, describe: Any = None) -> Any:
    """Reload the page until ``condition(driver)`` holds (the pages do not poll by themselves);
    at the deadline, fail with ``describe()`` (what was seen instead)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    reloading = (NoSuchElementException, StaleElementReferenceException)  # mid-reload
    try:
        return WebDriverWait(driver, WAIT, 0.3, ignored_exceptions=reloading).until(
            lambda d: condition(d) or d.refresh()
        )
    except TimeoutException:
        raise AssertionError(describe() if describe else driver.current_url) from None


def _go(driver: Any, element: Any) -> None:
    """Click a link or a form's button, and wait until the page it leads to has loaded (a
    look at the page before that would read the old one; a reload would cancel a post)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def left_behind(_driver: Any) -> bool:
        # Chromium reports an element of a page it has left as stale, or, caught mid-way, as
        # "Node with given id does not belong to the document": both mean the page changed.
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    element.click()
    WebDriverWait(driver, WAIT).until(left_behind)
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _notice(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "notice").text)


def _api(console: KitWeb, path: str) -> Any:
    reply = request(console.base + path)
    assert reply.status == 200, (path, reply.status, reply.body)
    return reply.json()


def _archived_ids(console: KitWeb) -> list[str]:
    page = _api(console, "/api/queues/low/tasks?state=archived")
    return [entry["id"] for entry in page["entries"]]


@pytest.fixture
def browser() -> Any:
    ensure_chromium()
    driver: Any = headless_chrome()
    driver.execute_cdp_cmd("Network.enable", {})
    token = base64.b64encode(AUTH.encode()).decode()
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )
    yield driver
    driver.quit()


@pytest.mark.e2e
def test_an_operator_reads_queues_requeues_pauses_and_a_read_only_console_refuses(
    start_worker: Any, redis: Any, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    from project import app
    from project.console.app import context_for, make_app
    from project.console.settings import ConsoleSettings

    start_worker(concurrency=1, env={"KIT_IMPORTS": IMPORTS})
    console = KitWeb(tmp_path, {})
    read_only = KitWeb(tmp_path, {"KIT_WEB_READ_ONLY": "true"})
    try:
        # Five tasks succeed and two tasks of `low` fail for good (their gate is closed):
        # archived.
        for n in range(5):
            assert app.send_task("tests.add", args=[n, 1]).get(timeout=WAIT) == n + 1
        for key in ("a", "b"):
            app.send_task("tests.console.gate", args=[key], queue="low")
        eventually(lambda: len(_archived_ids(console)) == 2, WAIT)
        # 1, 2 and 3 tasks wait in the paused queues.
        for queue in QUEUES:
            pause(redis, queue)
        for queue, waiting in zip(QUEUES, (1, 2, 3), strict=True):
            for n in range(waiting):
                app.send_task("tests.add", args=[n, n], queue=queue)

        browser.get(console.base + "/")
        expected = {"critical": "1", "default": "2", "low": "3"}
        _refreshed_until(browser, lambda d: _counts(d, "pending") == expected)
        assert _counts(browser, "archived") == {"critical": "0", "default": "0", "low": "2"}
        statuses = browser.find_elements(By.CSS_SELECTOR, "#queues td.status")
        assert [s.text for s in statuses] == ["paused"] * 3
        # The chart's title (the workers write their counts every second).
        _refreshed_until(browser, lambda d: "5 processed, 2 failed" in d.page_source)
        _screenshot(browser, "console-queues.png")

        # Resume each queue with its button: their tasks run.
        for queue in QUEUES:
            _go(browser, browser.find_element(By.CSS_SELECTOR, f'[data-queue="{queue}"] .resume'))
            assert _notice(browser) == f"{queue} resumed"
        zero = dict.fromkeys(QUEUES, "0")
        _refreshed_until(
            browser,
            lambda d: _counts(d, "pending") == zero,
            lambda: f"still pending: {_api(console, '/api/queues')}",
        )

        # The archive of `low`, then one task's detail; the cause fixed, it is requeued.
        _go(
            browser,
            browser.find_element(By.CSS_SELECTOR, '[data-queue="low"] [data-state="archived"] a'),
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "#tasks tbody tr[data-id]")
        assert sorted(r.get_attribute("data-id") for r in rows) == sorted(_archived_ids(console))
        _go(browser, rows[0].find_element(By.CSS_SELECTOR, "td.id a"))
        task_id = browser.find_element(By.CSS_SELECTOR, "#detail td.id").text
        assert browser.find_element(By.ID, "state").text == "archived"
        assert "PermanentError" in browser.find_element(By.ID, "traceback").text
        _screenshot(browser, "console-task.png")
        for key in ("a", "b"):
            redis.set(f"test:gate:{key}", "1")
        _go(browser, browser.find_element(By.CSS_SELECTOR, "button.requeue"))
        assert _notice(browser).startswith(f"requeue: task {task_id}")
        _refreshed_until(browser, lambda d: d.find_element(By.ID, "state").text == "completed")
        assert "passed" in browser.find_element(By.ID, "result").text
        assert _archived_ids(console) != [] and task_id not in _archived_ids(console)

        # Pause `default` with its button: a task sent there waits, while one sent to
        # `critical` afterwards runs (the worker fetched since, and skipped `default`).
        browser.get(console.base + "/")
        _go(browser, browser.find_element(By.CSS_SELECTOR, '[data-queue="default"] .pause'))
        assert _notice(browser) == "default paused"
        waiting = app.send_task("tests.add", args=[1, 1], queue="default")
        assert app.send_task("tests.add", args=[2, 2], queue="critical").get(timeout=WAIT) == 4
        _refreshed_until(browser, lambda d: _cell(d, "default", "pending") == "1")
        assert _api(console, f"/api/tasks/{waiting.id}")["entry"]["state"] == "pending"

        # The read-only console: the same pages without a button or form; every write 403.
        for path in ("/", "/queues/low/archived", f"/tasks/{_archived_ids(console)[0]}"):
            browser.get(read_only.base + path)
            assert browser.find_elements(By.CSS_SELECTOR, "#queues, #tasks, #detail")
            assert not browser.find_elements(By.TAG_NAME, "button")
            assert not browser.find_elements(By.CSS_SELECTOR, "form[method=post]")
        routes = make_app(context_for(app, ConsoleSettings(), (("u", "p"),))).wildcard_router
        for rule in routes.rules:
            path = concrete(rule.matcher.regex.pattern)  # type: ignore[attr-defined]
            assert request(read_only.base + path, "POST").status == 403, path
        assert _api(read_only, f"/api/tasks/{waiting.id}")["entry"]["state"] == "pending"
    finally:
        console.stop()
        read_only.stop()
