"""Every error the kit raises on purpose, in one place.

    KitError                      root: ``except KitError`` catches all of the kit's own errors
    ├── ConfigError               an environment variable is malformed; start-up stops
    ├── TaskError                 raised by task code to steer the retry policy
    │   ├── PermanentError        never retried: bad payload, missing file, 5xx reply
    │   │   └── ValidationError   arguments refused (at enqueue time or in the worker)
    │   └── TransientError        retried with exponential backoff: outages, timeouts, 4xx
    ├── DuplicateTaskError        enqueue_unique: the same work is already queued or running
    ├── TaskIdConflictError       enqueue_with_id: that task id is pending, retrying or running
    ├── RedisUnavailableError     the configured Redis does not answer
    ├── RedisPoolTimeoutError     no pooled Redis connection came free in time (also a redis
    │                             ConnectionError: transient, so a task retries it)
    ├── PublishRoundTripError     the one round trip of a publish failed (also kombu's
    │                             OperationalError); the kit publishes again, with kombu's retries
    ├── AlreadyRunningError       ``kit up`` is already running against this Redis
    ├── StateError                an operator's task action or listing cannot be done
    │   ├── UnknownTaskError      no task with that id is queued, held, scheduled, archived,
    │   │                         aggregating or finished (exit 1, HTTP 404)
    │   ├── UnknownQueueError     not a configured queue, or not a task state (exit 2, 404)
    │   └── TaskStateError        the task is not in a state that allows the action: a
    │                             running one cannot be deleted (exit 1, HTTP 409)
    └── NotAKitAppError           a Celery app that ``project.create_app`` did not make

Messages say what to do, not only what went wrong.
"""

from __future__ import annotations

import redis.exceptions
from kombu.exceptions import OperationalError

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "DuplicateTaskError",
    "KitError",
    "NotAKitAppError",
    "PermanentError",
    "PublishRoundTripError",
    "RedisPoolTimeoutError",
    "RedisUnavailableError",
    "StateError",
    "TaskError",
    "TaskIdConflictError",
    "TaskStateError",
    "TransientError",
    "UnknownQueueError",
    "UnknownTaskError",
    "ValidationError",
]


class KitError(Exception):
    """Root of the kit's errors."""


class ConfigError(KitError):
    """A configuration variable has a value the kit cannot use."""

    def __init__(self, variable: str, value: str, accepts: str) -> None:
        self.variable = variable
        self.value = value
        self.accepts = accepts
        super().__init__(
            f"{variable}={value!r} is invalid: {variable} accepts {accepts}. "
            f"Fix or unset {variable} and start again."
        )


class TaskError(KitError):
    """Raised from task code to choose between retrying and failing for good."""


class PermanentError(TaskError):
    """The task cannot succeed by trying again; it is archived after this attempt."""


class ValidationError(PermanentError, ValueError):
    """Task arguments are malformed. Raised before enqueueing, and again in the worker."""


class TransientError(TaskError):
    """The task may succeed later; it is retried with exponential backoff."""


class DuplicateTaskError(KitError):
    """The unique lock for this work is held; ``holder_id`` is the task that holds it."""

    def __init__(self, key: str, holder_id: str) -> None:
        self.key = key
        self.holder_id = holder_id
        super().__init__(
            f"duplicate task refused: {key!r} is held by task {holder_id}; wait for it, "
            "or pass on_duplicate='return' to get the holder's result instead of this error"
        )


class TaskIdConflictError(KitError):
    """A task with this id is still pending, scheduled, retrying or running."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"task id {task_id!r} is in use by a task that has not finished; "
            "reuse an id only after its task succeeded or was archived"
        )


class RedisUnavailableError(KitError):
    """Nothing answers at the configured Redis URL."""


class RedisPoolTimeoutError(KitError, redis.exceptions.ConnectionError):
    """Every connection of a shared client's pool stayed busy for the whole wait."""

    def __init__(self, max_connections: int, timeout: float | None) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        super().__init__(
            f"no Redis connection came free within {timeout} s: all {max_connections} of the "
            "pool are in use; raise KIT_REDIS_MAX_CONNECTIONS (or KIT_REDIS_POOL_TIMEOUT), or "
            "find what holds connections that long (blocking commands, slow scripts)"
        )


class PublishRoundTripError(KitError, OperationalError):
    """The pipelined round trip of one ``apply_async`` (message, bell, ``task-sent`` event)
    failed on a lost connection: nothing of it may be in Redis. The kit's ``amqp`` publishes the
    task again the ordinary way, through kombu's retries (``task_publish_retry``)."""


class AlreadyRunningError(KitError):
    """Another ``kit up`` holds the supervisor lock for this Redis."""


class NotAKitAppError(KitError):
    """The kit was asked for the settings of an app it did not make."""

    def __init__(self, app: object) -> None:
        super().__init__(
            f"{app!r} was not made by project.create_app, so it has no kit settings; "
            "use project.app or an app from project.create_app(settings)"
        )


class StateError(KitError):
    """An operator's action on a task (``kit task``, the console) cannot be done as asked."""


class UnknownTaskError(StateError):
    """No task with this id is anywhere the kit looks."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"no task {task_id!r} is known: not pending, running, scheduled, retrying, "
            "archived, aggregating or finished within KIT_RESULT_EXPIRES (see `kit task ls`)"
        )


class UnknownQueueError(StateError):
    """A queue that is not configured, or a state name that is not a task state."""

    def __init__(self, what: str, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown {what} {name!r}; {what}s: {', '.join(known)}")


class TaskStateError(StateError):
    """The task exists but its state does not allow the action (it may have moved on)."""

    def __init__(self, task_id: str, state: str, action: str, allowed: str) -> None:
        self.task_id = task_id
        self.state = state
        self.action = action
        super().__init__(
            f"cannot {action} task {task_id!r}: it is {state}; {action} applies to {allowed} tasks"
        )
