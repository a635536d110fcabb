"""The request handler every console route shares, and what the routes share (:class:`Context`).

In order, for every request: HTTP Basic authentication (401 and a ``WWW-Authenticate``
challenge without valid credentials), then for a write: the read-only mode (403), then the
CSRF token when the request is a browser's (:mod:`project.console.auth`; 403 without it).
Tornado's own ``xsrf_cookies`` check runs before ``prepare``, so before authentication: it
is moved here, after it, so an anonymous write gets 401 and never learns about tokens.

Blocking calls (Redis, Celery's inspect) run in :attr:`Context.executor`, never on Tornado's
loop, so one slow call does not hold up the other requests; they share the kit's Redis client,
whose pool waits for a free connection (``KIT_REDIS_POOL_TIMEOUT``) instead of failing.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import redis
import tornado.web
from celery import Celery
from jinja2 import Environment
from tornado.ioloop import IOLoop

from project import errors
from project.console.auth import Credentials, is_browser
from project.console.settings import ConsoleSettings
from project.settings import Settings

__all__ = ["THREADS", "ApiHandler", "BaseHandler", "Context"]

logger = logging.getLogger("project.console")

T = TypeVar("T")

#: Threads running blocking calls: enough for a few operators' pages at once, well under the
#: shared client's KIT_REDIS_MAX_CONNECTIONS (100 by default).
THREADS = 8

#: The kit's errors and what they answer (a subclass answers as its first listed base).
STATUS_OF_ERROR: tuple[tuple[type[errors.KitError], int], ...] = (
    (errors.UnknownTaskError, 404),
    (errors.UnknownQueueError, 404),
    (errors.TaskStateError, 409),
)


@dataclass
class Context:
    """What every handler needs: the kit's app and shared Redis client, the settings."""

    app: Celery
    client: redis.Redis
    kit_settings: Settings
    settings: ConsoleSettings
    credentials: Credentials
    templates: Environment
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(THREADS, thread_name_prefix="kit-console")
    )

    @property
    def queues(self) -> list[str]:
        return list(self.kit_settings.broker.queue_weights)


def _status(exc: BaseException) -> int | None:
    return next((code for kind, code in STATUS_OF_ERROR if isinstance(exc, kind)), None)


class BaseHandler(tornado.web.RequestHandler):
    """Authentication, CSRF, read-only mode, security headers and errors (HTML pages)."""

    #: Answers are JSON (the API) rather than HTML.
    json = False

    def initialize(self, context: Context) -> None:
        self.context = context
        self.user: str | None = None

    @property
    def nonce(self) -> str:
        """This response's script nonce (headers are set before ``initialize`` runs, and
        again after an error clears them: made once, on first use)."""
        value: str | None = getattr(self, "_nonce", None)
        if value is None:
            value = self._nonce = secrets.token_urlsafe(16)
        return value

    def set_default_headers(self) -> None:
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; "
            f"script-src 'nonce-{self.nonce}'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'",
        )

    def check_xsrf_cookie(self) -> None:
        """Deferred to :meth:`prepare`, after authentication (see the module docstring)."""

    def prepare(self) -> None:
        self.user = self.context.credentials.user(self.request.headers.get("Authorization"))
        if self.user is None:
            raise tornado.web.HTTPError(401, "authentication required")
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if self.context.settings.read_only:
            raise tornado.web.HTTPError(403, "the console is read-only (KIT_WEB_READ_ONLY)")
        if is_browser(self.request.headers):
            tornado.web.RequestHandler.check_xsrf_cookie(self)

    def get_current_user(self) -> str | None:
        return self.user

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the thread pool; the kit's errors become HTTP errors."""
        try:
            return await IOLoop.current().run_in_executor(
                self.context.executor, partial(function, *args)
            )
        except redis.RedisError as exc:  # first: RedisPoolTimeoutError is a KitError too
            raise tornado.web.HTTPError(503, "Redis is unreachable: %s", exc) from None
        except errors.KitError as exc:
            status = _status(exc)
            if status is None:
                raise
            raise tornado.web.HTTPError(status, "%s", exc) from None

    def audit(self, action: str, *, task: str | None = None, queue: str | None = None) -> None:
        """One log line per action: who, what, on which task or queue (never arguments)."""
        target = " ".join(f"{k}={v}" for k, v in (("task", task), ("queue", queue)) if v)
        logger.info("console action by %s: %s %s", self.user, action, target)

    def check_queue(self, queue: str) -> str:
        if queue not in self.context.queues:
            known = ", ".join(self.context.queues)
            raise tornado.web.HTTPError(404, "unknown queue %r; queues: %s", queue, known)
        return queue

    def render_page(self, template: str, **values: Any) -> None:
        page = self.context.templates.get_template(template)
        self.finish(
            page.render(
                user=self.user,
                read_only=self.context.settings.read_only,
                xsrf_form_html=self.xsrf_form_html,
                nonce=self.nonce,
                path=self.request.path,
                **values,
            )
        )

    def _message(self, kwargs: dict[str, Any]) -> str:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            return str(exc.log_message % exc.args if exc.args else exc.log_message)
        return self._reason

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._message(kwargs)
        if status_code == 401:  # here: sending an error clears the headers set before
            self.set_header("WWW-Authenticate", 'Basic realm="celery-kit console"')
        if self.json:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": message, "status": status_code}))
            return
        page = self.context.templates.get_template("error.html")
        self.finish(
            page.render(
                status=status_code, message=message, user=self.user, nonce=self.nonce, path=""
            )
        )


class ApiHandler(BaseHandler):
    """A JSON route."""

    json = True

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, default=str))

    def argument(self, name: str) -> str | None:
        """A query or form argument, or the same key of a JSON body."""
        value = self.get_argument(name, None)
        if value is None and self.request.headers.get("Content-Type", "").startswith(
            "application/json"
        ):
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                raise tornado.web.HTTPError(400, "the body is not JSON") from None
            found = body.get(name) if isinstance(body, dict) else None
            value = None if found is None else str(found)
        return value
