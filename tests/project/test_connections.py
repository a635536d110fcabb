"""The kit's shared Redis client under concurrency: callers wait for a connection, bounded by
``KIT_REDIS_POOL_TIMEOUT``, and are never refused because others are busy."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from project import DuplicateTaskError
from project.broker.connections import redis_client
from project.broker.settings import RedisSettings
from project.enqueue.dedup import enqueue_unique
from project.errors import KitError, RedisPoolTimeoutError
from tests.support.polling import eventually


def _waiting(redis: Any, queue: str = "default") -> int:
    return sum(redis.llen(k) for k in redis.keys(f"{queue}*") if redis.type(k) == "list")


@pytest.mark.e2e
def test_three_hundred_threads_enqueue_unique_at_once_and_none_is_refused(redis: Any) -> None:
    """redis-py 8's default pool raised MaxConnectionsError past 100 connections in use."""
    from tests.support.tasks import add

    threads = 300
    barrier = threading.Barrier(threads)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def produce() -> None:
        barrier.wait()
        try:
            outcome = ("published", enqueue_unique(add.s(40, 2)).id)
        except DuplicateTaskError as exc:
            outcome = ("holder", exc.holder_id)
        except Exception as exc:  # anything else is the defect
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    errors = [detail for kind, detail in outcomes if kind == "error"]
    assert not errors, f"{len(errors)} of {threads} callers failed, e.g. {errors[0]}"
    published = [detail for kind, detail in outcomes if kind == "published"]
    assert len(outcomes) == threads and len(published) == 1
    assert [d for k, d in outcomes if k == "holder"] == published * (threads - 1)
    assert _waiting(redis) == 1


def test_a_caller_waits_for_a_busy_pool_instead_of_failing(redis_url: str, redis: Any) -> None:
    client = redis_client(RedisSettings(url=redis_url, max_connections=1, pool_timeout=30.0))
    popped: list[Any] = []
    holder = threading.Thread(target=lambda: popped.append(client.blpop(["pool:gate"], 30)))
    holder.start()  # holds the pool's only connection until the gate opens
    eventually(lambda: any(c.get("cmd") == "blpop" for c in redis.client_list()), 10)

    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.append(client.incr("pool:waited")))
    waiter.start()
    assert not answers  # waits: the only connection is busy
    redis.lpush("pool:gate", "open")
    holder.join(timeout=30)
    waiter.join(timeout=30)
    assert popped and answers == [1]


def test_an_exhausted_pool_raises_a_named_error_after_the_timeout(
    redis_url: str, redis: Any
) -> None:
    client = redis_client(RedisSettings(url=redis_url, max_connections=1, pool_timeout=0.2))
    holder = threading.Thread(target=lambda: client.blpop(["pool:gate"], 30))
    holder.start()
    eventually(lambda: any(c.get("cmd") == "blpop" for c in redis.client_list()), 10)
    try:
        with pytest.raises(RedisPoolTimeoutError) as caught:
            client.get("anything")
        assert isinstance(caught.value, KitError)
        assert "KIT_REDIS_MAX_CONNECTIONS" in str(caught.value)
        assert "\n" not in str(caught.value)
    finally:
        redis.lpush("pool:gate", "open")
        holder.join(timeout=30)


def test_pool_settings_are_read_from_the_environment() -> None:
    from project.config.env import Env

    settings = RedisSettings.from_env(
        Env({"KIT_REDIS_MAX_CONNECTIONS": "250", "KIT_REDIS_POOL_TIMEOUT": "2.5"})
    )
    assert (settings.max_connections, settings.pool_timeout) == (250, 2.5)
    defaults = RedisSettings.from_env(Env({}))
    assert defaults.max_connections >= 100 and defaults.pool_timeout > 0


def test_a_failover_to_the_next_url_keeps_the_kits_transport() -> None:
    """kombu takes the next URL's transport from its scheme; the kit's connection keeps its
    own for URLs of its list (another scheme still gets that scheme's transport)."""
    from project.broker.connections import BrokerConnection
    from project.broker.transport import SENTINEL_TRANSPORT

    urls = "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380"
    connection = BrokerConnection(urls, transport=SENTINEL_TRANSPORT)  # type: ignore[no-untyped-call]
    connection.maybe_switch_next()  # type: ignore[no-untyped-call]
    assert (connection.port, connection.transport_cls) == (26380, SENTINEL_TRANSPORT)
    connection.maybe_switch_next()  # type: ignore[no-untyped-call]
    assert (connection.port, connection.transport_cls) == (26379, SENTINEL_TRANSPORT)
    connection.switch("redis://127.0.0.1:6379/0")  # never connected: switch does not connect
    assert connection.transport_cls == "redis"
