"""The JSON API, for scripts and for the pages' few enhancements.

Status codes: 401 without valid credentials, 403 for a write in read-only mode or from a
browser without the CSRF token, 404 for an unknown task or queue, 409 for an action the
task's state does not allow, 400 for a bad ``state``, ``limit`` or ``cursor``, 503 when
Redis does not answer. Errors are ``{"error": message, "status": code}``.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from project.console import chart, service
from project.console.base import ApiHandler
from project.ops.states import TaskState

__all__ = ["ROUTES"]

MAX_LIMIT = 500  # tasks a page may ask for: one page is one HTML table
DEFAULT_LIMIT = 50
STATES = tuple(state.value for state in TaskState)


def check_state(state: str | None, allowed: tuple[str, ...] = STATES) -> str:
    if state not in allowed:
        raise tornado.web.HTTPError(
            400, "state must be one of %s, not %r", ", ".join(allowed), state
        )
    return state


def check_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise tornado.web.HTTPError(400, "limit must be a whole number from 1 to %d", MAX_LIMIT)
    return int(raw)


class QueuesApi(ApiHandler):
    async def get(self) -> None:
        rows = await self.call(service.overview, self.context)
        self.reply({"queues": rows})


class QueueTasksApi(ApiHandler):
    async def get(self, queue: str) -> None:
        self.check_queue(queue)
        state = check_state(self.get_argument("state", None))
        limit = check_limit(self.get_argument("limit", None))
        cursor = self.get_argument("cursor", None) or None
        page = await self.call(list_page, self.context, queue, state, limit, cursor)
        self.reply(page.as_dict())


def list_page(context: Any, queue: str, state: str, limit: int, cursor: str | None) -> Any:
    from project.ops.states import UnknownQueueError, list_tasks

    try:
        return list_tasks(context.app, context.client, queue, state, limit=limit, cursor=cursor)
    except UnknownQueueError as exc:  # queue and state are checked: a cursor not of this list
        raise tornado.web.HTTPError(400, "%s", exc) from None


def find(context: Any, task_id: str) -> Any:
    from project.ops.states import find_task

    return find_task(context.app, context.client, task_id)


class TaskApi(ApiHandler):
    async def get(self, task_id: str) -> None:
        detail = await self.call(find, self.context, task_id)
        self.reply(detail.as_dict())


class TaskActionApi(ApiHandler):
    async def post(self, task_id: str, action: str) -> None:
        left, now = await self.call(service.task_action, self.context, action, task_id)
        self.audit(action, task=task_id)
        self.reply({"task": task_id, "action": action, "from_state": left, "id_now": now})


class QueueActionApi(ApiHandler):
    async def post(self, queue: str, action: str) -> None:
        self.check_queue(queue)
        if action == "purge":
            state = check_state(self.argument("state"), service.PURGEABLE)
            removed, _ = await self.call(service.bulk, self.context, queue, state, "delete", None)
            self.audit(f"purge {state}", queue=queue)
            self.reply({"queue": queue, "action": action, "state": state, "removed": removed})
            return
        changed = await self.call(service.set_paused, self.context, queue, action == "pause")
        self.audit(action, queue=queue)
        self.reply({"queue": queue, "action": action, "changed": changed})


class ChartApi(ApiHandler):
    async def get(self) -> None:
        self.reply(await self.call(service.series, self.context, chart.MINUTES))


class CronApi(ApiHandler):
    async def get(self) -> None:
        self.reply({"entries": await self.call(service.cron, self.context)})


class WorkersApi(ApiHandler):
    async def get(self) -> None:
        self.reply(await self.call(service.workers, self.context))


class RedisApi(ApiHandler):
    async def get(self) -> None:
        self.reply(await self.call(service.redis_info, self.context))


ID = r"(?P<task_id>[^/]+)"
QUEUE = r"(?P<queue>[^/]+)"
ROUTES: list[tuple[str, type[ApiHandler]]] = [
    (r"/api/queues", QueuesApi),
    (rf"/api/queues/{QUEUE}/tasks", QueueTasksApi),
    (rf"/api/queues/{QUEUE}/(?P<action>pause|resume|purge)", QueueActionApi),
    (rf"/api/tasks/{ID}", TaskApi),
    (rf"/api/tasks/{ID}/(?P<action>run|archive|delete|requeue)", TaskActionApi),
    (r"/api/stats/minutes", ChartApi),
    (r"/api/cron", CronApi),
    (r"/api/workers", WorkersApi),
    (r"/api/redis", RedisApi),
]
