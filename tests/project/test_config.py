"""Configuration: documented defaults, and malformed values stop start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from project.errors import ConfigError
from project.settings import load_settings
from tests.support.workers import ROOT


def test_defaults_match_the_documented_values() -> None:
    settings = load_settings({})
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.redis.result_backend == "redis://127.0.0.1:6379/1"
    assert settings.broker.queue_weights == {"critical": 6, "default": 3, "low": 1}
    assert settings.broker.strict_priority is False
    assert settings.broker.prefetch_multiplier == 1
    assert (settings.tasks.soft_time_limit, settings.tasks.time_limit) == (300, 360)


def test_result_backend_defaults_to_the_next_database_of_the_broker() -> None:
    settings = load_settings({"REDIS_URL": "redis://:secret@cache.internal:6380/4"})
    assert settings.redis.result_backend == "redis://:secret@cache.internal:6380/5"


def test_queue_weights_parse_with_spaces_and_extra_queues() -> None:
    settings = load_settings({"KIT_QUEUE_WEIGHTS": " critical = 10, default=5 ,low=1,images=2"})
    assert settings.broker.queue_weights == {"critical": 10, "default": 5, "low": 1, "images": 2}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KIT_QUEUE_WEIGHTS", "critical=x,default=3,low=1", "queue=weight pairs"),
        ("KIT_QUEUE_WEIGHTS", "critical=6,low=1", "a 'default' queue"),
        ("KIT_QUEUE_WEIGHTS", "critical=0,default=3", "at least 1"),
        ("REDIS_URL", "amqp://guest@localhost//", "redis://, rediss:// or redis+socket://"),
        ("REDIS_URL", "redis://localhost:port/0", "redis://"),
        ("KIT_RESULT_BACKEND", "redis://localhost/zero", "database number"),
        ("KIT_STRICT_PRIORITY", "maybe", "true/false"),
        ("KIT_CONCURRENCY", "0", "at least 1"),
        ("KIT_DEFAULT_PRIORITY", "10", "from 0 to 9"),
        ("KIT_RETRY_JITTER", "1.5", "from 0.0 to 1.0"),
        ("KIT_VISIBILITY_TIMEOUT", "1h", "whole number"),
        ("FLOWER_BASIC_AUTH", "admin", "user:password"),
    ],
)
def test_malformed_value_names_the_variable_and_what_it_accepts(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    assert expected in message


def test_hard_time_limit_must_exceed_the_soft_one() -> None:
    with pytest.raises(ConfigError, match="greater than KIT_TASK_SOFT_TIME_LIMIT"):
        load_settings({"KIT_TASK_SOFT_TIME_LIMIT": "60", "KIT_TASK_TIME_LIMIT": "60"})


def test_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"FLOWER_BASIC_AUTH": "s3cretpassword"})
    assert "s3cretpassword" not in str(caught.value)


@pytest.mark.e2e
def test_worker_refuses_to_start_on_a_malformed_weight(tmp_path: object) -> None:
    env = dict(os.environ, KIT_QUEUE_WEIGHTS="critical=x,default=3,low=1")
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "project", "worker"],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "KIT_QUEUE_WEIGHTS='critical=x,default=3,low=1' is invalid" in done.stderr
    assert "queue=weight pairs" in done.stderr
    assert str(ROOT) != str(tmp_path)


def test_task_events_can_be_switched_off_for_throughput() -> None:
    from project.application import celery_config

    assert celery_config(load_settings({}))["worker_send_task_events"] is True
    quiet = celery_config(load_settings({"KIT_TASK_EVENTS": "false"}))
    assert (quiet["worker_send_task_events"], quiet["task_send_sent_event"]) == (False, False)
    with pytest.raises(ConfigError, match="KIT_TASK_EVENTS"):
        load_settings({"KIT_TASK_EVENTS": "sometimes"})


def test_an_empty_catalog_means_no_catalog_modules() -> None:
    assert load_settings({}).tasks.catalog  # the default: the kit's catalog
    only_mine = load_settings({"KIT_CATALOG": "", "KIT_IMPORTS": "myapp.tasks"}).tasks
    assert only_mine.catalog == () and only_mine.modules == ("myapp.tasks",)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6390/0", "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380/0"]
)
def test_beat_reads_redbeats_own_options_not_the_brokers(url: str) -> None:
    import warnings

    from redbeat.schedulers import RedBeatConfig

    from project.application import create_app

    env = {"REDIS_URL": url, "KIT_SENTINEL_MASTER": "kit"}
    app = create_app(load_settings(env))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # redbeat warns when it falls back to the broker's
        config = RedBeatConfig(app)
    sentinel = url.startswith("sentinel://")
    assert ("sentinels" in config.redbeat_redis_options) is sentinel
    assert "visibility_timeout" not in config.redbeat_redis_options
