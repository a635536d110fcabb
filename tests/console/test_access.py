"""Who may do what: every route asks for credentials, writes from a browser need the CSRF
token, the read-only console refuses every write, and responses carry security headers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import AUTH, InProcessConsole, basic, request

#: A value for each path parameter of the route table, so every route can be called.
SAMPLES = {"queue": "default", "task_id": "no-such-task", "state": "pending"}
GROUP = re.compile(r"\(\?P<(\w+)>([^()]*)\)")


def concrete(pattern: str) -> str:
    """A path the route's pattern matches: each named group replaced by a sample value (an
    alternation by its first choice)."""

    def sample(match: re.Match[str]) -> str:
        name, body = match.group(1), match.group(2)
        if "|" in body or body.isalpha():
            return body.split("|")[0]
        return SAMPLES[name]

    return GROUP.sub(sample, pattern).rstrip("$").replace("\\", "")


def routes(console: InProcessConsole) -> list[str]:
    paths = []
    for rule in console.application.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern  # type: ignore[attr-defined]
        path = concrete(pattern)
        assert re.fullmatch(pattern, path), (pattern, path)
        paths.append(path)
    return paths


def test_the_route_table_holds_the_pages_and_the_api(console: InProcessConsole) -> None:
    paths = routes(console)
    for expected in (
        "/",
        "/api/queues",
        "/api/queues/default/tasks",
        "/api/tasks/no-such-task",
        "/api/tasks/no-such-task/run",
        "/api/queues/default/pause",
        "/static/console.css",
    ):
        assert expected in paths


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_route_answers_401_without_credentials(
    console: InProcessConsole, method: str
) -> None:
    for path in [*routes(console), "/not-a-route"]:
        reply = request(console.base + path, method, auth=None)
        assert reply.status == 401, (method, path, reply.status)
        assert reply.headers.get("WWW-Authenticate", "").startswith("Basic")


def test_a_wrong_password_is_refused(console: InProcessConsole) -> None:
    assert request(console.base + "/api/cron", auth="operator:wrong").status == 401
    assert request(console.base + "/api/cron", auth="intruder:s3cret-console").status == 401
    assert request(console.base + "/api/cron").status == 200


def test_a_browser_post_without_the_token_is_refused(console: InProcessConsole) -> None:
    url = console.base + "/api/queues/default/pause"
    # A cookie session (what a browser that opened a page has) without the token: refused.
    assert request(url, "POST", headers={"Cookie": "_xsrf=2|00|00|00"}).status == 403
    # So is a cross-site form post a browser makes (Origin and Sec-Fetch-* headers, no cookie).
    forged = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert request(url, "POST", headers=forged).status == 403
    assert not console.context.client.sismember("kit:paused", "default")


def test_a_browser_post_with_the_pages_token_is_accepted(console: InProcessConsole) -> None:
    page = request(console.base + "/queues/default/pending")
    assert page.status == 200
    cookie = page.headers["Set-Cookie"].split(";")[0]
    token = re.search(rb'name="_xsrf" value="([^"]+)"', page.body)
    assert token is not None
    reply = request(
        console.base + "/api/queues/default/pause",
        "POST",
        headers={"Cookie": cookie, "X-XSRFToken": token.group(1).decode()},
    )
    assert reply.status == 200, reply.body
    assert console.context.client.sismember("kit:paused", "default")


def test_a_script_with_credentials_needs_no_token(console: InProcessConsole, redis: Any) -> None:
    reply = request(console.base + "/api/queues/low/pause", "POST")
    assert reply.status == 200 and reply.json()["changed"] is True
    assert redis.sismember("kit:paused", "low")
    assert request(console.base + "/api/queues/low/resume", "POST").json()["changed"] is True
    assert not redis.sismember("kit:paused", "low")


def test_the_read_only_console_refuses_every_write(read_only_console: InProcessConsole) -> None:
    for path in routes(read_only_console):
        reply = request(read_only_console.base + path, "POST")
        assert reply.status == 403, (path, reply.status)
        if "/api/" in path:
            assert "read-only" in reply.json()["error"]
    page = request(read_only_console.base + "/queues/default/pending")
    assert page.status == 200
    assert b"<button" not in page.body and b'method="post"' not in page.body


def test_responses_carry_security_headers(console: InProcessConsole) -> None:
    for path in ("/cron", "/api/cron"):
        headers = request(console.base + path).headers
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
    cookie = request(console.base + "/queues/default/pending").headers["Set-Cookie"]
    assert cookie.startswith("_xsrf=") and "SameSite=Strict" in cookie and "HttpOnly" in cookie


def test_an_action_logs_who_did_what(
    console: InProcessConsole, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="project.console"):
        assert request(console.base + "/api/queues/critical/pause", "POST").status == 200
    [line] = [r.getMessage() for r in caplog.records if r.name == "project.console"]
    assert line == f"console action by {AUTH.split(':')[0]}: pause queue=critical"


def test_basic_header_parsing_refuses_malformed_values(console: InProcessConsole) -> None:
    for header in ("Basic", "Basic !!!", "Bearer abc", basic("no-colon")):
        reply = request(console.base + "/api/cron", auth=None, headers={"Authorization": header})
        assert reply.status == 401
