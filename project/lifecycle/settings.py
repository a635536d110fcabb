"""What every task gets unless it says otherwise: time limits, priority, the modules to load
(and whether what they built is frozen out of the garbage collector's way)."""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env
from project.errors import ConfigError

__all__ = ["DEFAULT_CATALOG", "TaskSettings"]

DEFAULT_SOFT_TIME_LIMIT = 300  # seconds
DEFAULT_TIME_LIMIT = 360  # seconds
DEFAULT_PRIORITY = 5  # 0 is the most urgent, 9 the least (kombu's Redis convention)
#: The task catalog's modules, which workers import (Celery's ``imports``) unless
#: KIT_CATALOG says otherwise; KIT_IMPORTS adds the user's own.
DEFAULT_CATALOG = (
    "tasks.images.tasks",
    "tasks.images.batch",
    "tasks.email.tasks",
    "tasks.maintenance.tasks",
)


@dataclass(frozen=True)
class TaskSettings:
    soft_time_limit: int = DEFAULT_SOFT_TIME_LIMIT  # seconds
    time_limit: int = DEFAULT_TIME_LIMIT  # seconds
    default_priority: int = DEFAULT_PRIORITY
    catalog: tuple[str, ...] = DEFAULT_CATALOG
    imports: tuple[str, ...] = ()
    # What the imports built is frozen out of the garbage collector's way (lifecycle.freezing).
    gc_freeze: bool = True

    @classmethod
    def from_env(cls, env: Env) -> TaskSettings:
        soft = env.integer("KIT_TASK_SOFT_TIME_LIMIT", DEFAULT_SOFT_TIME_LIMIT, minimum=1)
        hard = env.integer("KIT_TASK_TIME_LIMIT", DEFAULT_TIME_LIMIT, minimum=1)
        if hard <= soft:
            raise ConfigError(
                "KIT_TASK_TIME_LIMIT",
                str(hard),
                f"a whole number of seconds greater than KIT_TASK_SOFT_TIME_LIMIT ({soft}), "
                "so a task gets its soft-limit exception before it is killed",
            )
        catalog = env.names("KIT_CATALOG") if env.is_set("KIT_CATALOG") else DEFAULT_CATALOG
        return cls(
            soft_time_limit=soft,
            time_limit=hard,
            default_priority=env.integer(
                "KIT_DEFAULT_PRIORITY", DEFAULT_PRIORITY, minimum=0, maximum=9
            ),
            catalog=catalog,
            imports=env.names("KIT_IMPORTS"),
            gc_freeze=env.boolean("KIT_GC_FREEZE", True),
        )

    @property
    def modules(self) -> tuple[str, ...]:
        """What a worker imports: the catalog, then the user's modules."""
        return tuple(dict.fromkeys((*self.catalog, *self.imports)))
