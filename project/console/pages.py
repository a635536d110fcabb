"""The HTML pages and their form actions (plain forms: everything works without JavaScript).

Each form posts to a route here, which acts and redirects back (303) with a notice. In
read-only mode no form is rendered, and :mod:`project.console.base` refuses every write.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import tornado.web

from project.console import api, chart, service
from project.console.base import BaseHandler

__all__ = ["ROUTES"]


class Page(BaseHandler):
    def notice(self) -> str | None:
        return self.get_argument("notice", None)

    def back(self, path: str, notice: str) -> None:
        if not path.startswith("/") or path.startswith("//"):
            path = "/"
        self.redirect(f"{path}?{urlencode({'notice': notice})}", status=303)


class Overview(Page):
    async def get(self) -> None:
        rows = await self.call(service.overview, self.context)
        minutes = await self.call(service.series, self.context, chart.MINUTES)
        self.render_page(
            "overview.html",
            queues=rows,
            states=api.STATES,
            chart=chart.svg(minutes),
            notice=self.notice(),
        )


class TaskList(Page):
    async def get(self, queue: str, state: str) -> None:
        self.check_queue(queue)
        api.check_state(state)
        limit = api.check_limit(self.get_argument("limit", None))
        cursor = self.get_argument("cursor", None) or None
        page = await self.call(api.list_page, self.context, queue, state, limit, cursor)
        self.render_page(
            "tasks.html",
            queue=queue,
            state=state,
            page=page,
            limit=limit,
            actions=service.actions_for(state),
            purgeable=state in service.PURGEABLE,
            notice=self.notice(),
        )


class TaskPage(Page):
    async def get(self, task_id: str) -> None:
        detail = await self.call(api.find, self.context, task_id)
        template = self.context.settings.trace_url_template
        trace_url = (
            template.replace("{trace_id}", detail.trace_id)
            if template and detail.trace_id
            else None
        )
        self.render_page(
            "task.html",
            task=detail,
            entry=detail.entry,
            payload=json.dumps(detail.payload, indent=2, default=str),
            result=json.dumps(detail.result, indent=2, default=str),
            trace_url=trace_url,
            actions=service.actions_for(str(detail.entry.state), bool(detail.entry.error)),
            notice=self.notice(),
        )


class CronPage(Page):
    async def get(self) -> None:
        self.render_page("cron.html", entries=await self.call(service.cron, self.context))


class WorkersPage(Page):
    async def get(self) -> None:
        self.render_page("workers.html", **await self.call(service.workers, self.context))


class RedisPage(Page):
    async def get(self) -> None:
        self.render_page("redis.html", info=await self.call(service.redis_info, self.context))


class QueueAction(Page):
    async def post(self, queue: str, action: str) -> None:
        self.check_queue(queue)
        changed = await self.call(service.set_paused, self.context, queue, action == "pause")
        self.audit(action, queue=queue)
        done = f"{queue} {action}d" if changed else f"{queue} was already {action}d"
        self.back("/", done)


class TaskAction(Page):
    async def post(self, task_id: str, action: str) -> None:
        left, now = await self.call(service.task_action, self.context, action, task_id)
        self.audit(action, task=task_id)
        target = "/" if action == "delete" else f"/tasks/{now}"
        self.back(target, f"{action}: task {task_id} (was {left})")


class BulkAction(Page):
    """The list page's form: ``action`` is ``<action>:selected`` (the ``id`` checkboxes) or
    ``<action>:all`` (every task of the queue in that state)."""

    async def post(self, queue: str, state: str) -> None:
        self.check_queue(queue)
        api.check_state(state)
        action, _, scope = (self.get_argument("action", "") or "").partition(":")
        if action not in service.actions_for(state) or scope not in ("selected", "all"):
            raise tornado.web.HTTPError(400, "no action %r for %s tasks", action, state)
        ids = self.get_arguments("id") if scope == "selected" else None
        if ids is not None and not ids:
            raise tornado.web.HTTPError(400, "select tasks first")
        done, skipped = await self.call(service.bulk, self.context, queue, state, action, ids)
        self.audit(f"{action} {scope} ({done} tasks)", queue=f"{queue}/{state}")
        note = f"{action}: {done} task(s)" + (f", {skipped} skipped" if skipped else "")
        self.back(f"/queues/{queue}/{state}", note)


QUEUE = r"(?P<queue>[^/]+)"
STATE = r"(?P<state>[a-z]+)"
ROUTES: list[tuple[str, type[Page]]] = [
    (r"/", Overview),
    (rf"/queues/{QUEUE}/(?P<action>pause|resume)", QueueAction),
    (rf"/queues/{QUEUE}/{STATE}/actions", BulkAction),
    (rf"/queues/{QUEUE}/{STATE}", TaskList),
    (r"/tasks/(?P<task_id>[^/]+)", TaskPage),
    (r"/tasks/(?P<task_id>[^/]+)/(?P<action>run|archive|delete|requeue)", TaskAction),
    (r"/cron", CronPage),
    (r"/workers", WorkersPage),
    (r"/redis", RedisPage),
]
