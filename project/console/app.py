"""The console's Tornado application: its route table, and :func:`serve` for ``kit web``.

Every route, the stylesheet's included, goes through :class:`~project.console.base.BaseHandler`
(authentication first); ``tests/console`` walks :func:`make_app`'s table to prove it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tornado.web
from celery import Celery
from jinja2 import Environment, FileSystemLoader, select_autoescape

from project.console import api, pages
from project.console.auth import Credentials
from project.console.base import BaseHandler, Context
from project.console.settings import ConsoleSettings

__all__ = ["context_for", "make_app", "serve"]

logger = logging.getLogger("project.console")

HERE = Path(__file__).resolve().parent


class Stylesheet(BaseHandler):
    """The one static file, behind the same authentication as the pages."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/css; charset=utf-8")
        self.finish((HERE / "static" / "console.css").read_bytes())


def context_for(
    app: Celery, settings: ConsoleSettings, credentials: tuple[tuple[str, str], ...]
) -> Context:
    from project.lifecycle.kit import kit_of

    kit = kit_of(app)
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    templates.filters["when"] = _when
    return Context(
        app=app,
        client=kit.redis,
        kit_settings=kit.settings,
        settings=settings,
        credentials=Credentials(credentials),
        templates=templates,
    )


def _when(seconds: float | None) -> str:
    """Unix seconds as UTC, to the second (the lists' time column)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def make_app(context: Context) -> tornado.web.Application:
    routes: list[Any] = [
        (path, handler, {"context": context})
        for path, handler in [*pages.ROUTES, *api.ROUTES, (r"/static/console\.css", Stylesheet)]
    ]
    return tornado.web.Application(
        routes,
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Strict", "httponly": True},
        default_handler_class=NotFound,
        default_handler_args={"context": context},
    )


class NotFound(BaseHandler):
    """Any other path: 401 without credentials, 404 with them."""

    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404, "no such page")


async def _run(application: tornado.web.Application, address: str, port: int) -> None:
    server = application.listen(port, address=address, xheaders=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logger.info("console listening on http://%s:%d/", address, port)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def serve(context: Context) -> None:
    """Serve until SIGINT or SIGTERM (``kit up`` stops the console with SIGTERM)."""
    application = make_app(context)
    try:
        asyncio.run(_run(application, context.settings.address, context.settings.port))
    finally:
        context.executor.shutdown(wait=False, cancel_futures=True)
