"""The console's variables: defaults, credentials (its own or Flower's), refusals; and
``kit web``'s refusal to serve a non-loopback address without credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from project.config.env import Env
from project.console.settings import ConsoleSettings
from project.errors import ConfigError
from tests.console.conftest import KitWeb, request
from tests.support.polling import eventually
from tests.support.workers import ROOT


def _settings(**environ: str) -> ConsoleSettings:
    return ConsoleSettings.from_env(Env(environ))


def test_defaults_listen_on_this_host_next_to_flower() -> None:
    settings = _settings()
    assert (settings.address, settings.port) == ("127.0.0.1", 5556)
    assert settings.credentials == () and not settings.read_only


def test_flowers_credentials_are_used_unless_the_console_has_its_own() -> None:
    assert _settings(FLOWER_BASIC_AUTH="a:b").credentials == (("a", "b"),)
    own = _settings(FLOWER_BASIC_AUTH="a:b", KIT_WEB_BASIC_AUTH="c:d,e:f:g")
    assert own.credentials == (("c", "d"), ("e", "f:g"))
    assert own.credentials_source == "KIT_WEB_BASIC_AUTH"


@pytest.mark.parametrize(
    "environ",
    [
        {"KIT_WEB_BASIC_AUTH": "nopassword"},
        {"KIT_WEB_BASIC_AUTH": "a:b,:c"},
        {"KIT_WEB_PORT": "0"},
        {"KIT_WEB_READ_ONLY": "maybe"},
        {"KIT_TRACE_URL_TEMPLATE": "https://jaeger/trace/"},
    ],
)
def test_malformed_values_are_refused_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(**environ)
    assert refused.value.variable == next(iter(environ))
    assert "secret" not in str(refused.value)


def test_a_malformed_password_list_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(KIT_WEB_BASIC_AUTH="admin-secret-no-colon")
    assert "admin-secret" not in str(refused.value)


def test_kit_web_refuses_a_public_address_without_credentials() -> None:
    env = {k: v for k, v in os.environ.items() if "BASIC_AUTH" not in k}
    env.update(KIT_WEB_ADDRESS="0.0.0.0", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "project.cli", "web"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("kit: KIT_WEB_BASIC_AUTH=") and "loopback" in line


def test_kit_web_on_loopback_without_credentials_makes_a_password(tmp_path: Path) -> None:
    web = KitWeb(tmp_path, {"KIT_WEB_BASIC_AUTH": "", "FLOWER_BASIC_AUTH": ""})
    try:
        line = eventually(
            lambda: next((s for s in web.output.splitlines() if "generated for this run" in s), "")
        )
        generated = line.rsplit(" ", 1)[1]
        assert generated.startswith("admin:") and len(generated) > 12
        assert request(web.base + "/api/redis", auth=generated).status == 200
        assert request(web.base + "/api/redis").status == 401  # not the usual test password
    finally:
        assert web.stop() == 0
