"""``kit web``: the operator console alone (``kit up`` runs it beside Flower).

It never serves without authentication: with no credentials configured (neither
``KIT_WEB_BASIC_AUTH`` nor ``FLOWER_BASIC_AUTH``) it makes a password for the run and prints
it, on a loopback address only; on any other address it refuses to start (exit 2).
"""

from __future__ import annotations

import ipaddress
import logging
import os

import click

__all__ = ["web"]

LOG_FORMAT = "[%(asctime)s: %(levelname)s] %(name)s: %(message)s"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@click.command()
def web() -> None:
    """Serve the operator console on KIT_WEB_ADDRESS:KIT_WEB_PORT (127.0.0.1:5556).

    Queues, task lists and actions, cron, workers and Redis, and a JSON API; HTTP Basic
    authentication (KIT_WEB_BASIC_AUTH, else FLOWER_BASIC_AUTH).
    """
    from project.config.env import Env
    from project.console.app import context_for, serve
    from project.console.auth import generated
    from project.console.settings import CREDENTIALS_ACCEPTS, ConsoleSettings
    from project.errors import ConfigError
    from project.lifecycle.kit import default_kit
    from project.telemetry.logs import install_log_correlation

    settings = ConsoleSettings.from_env(Env(os.environ))
    credentials = settings.credentials
    if not credentials:
        if not is_loopback(settings.address):
            raise ConfigError(
                "KIT_WEB_BASIC_AUTH",
                "",
                f"{CREDENTIALS_ACCEPTS}; it (or FLOWER_BASIC_AUTH) is required when "
                f"KIT_WEB_ADDRESS={settings.address} is not a loopback address",
            )
        user, password = generated()
        credentials = ((user, password),)
        click.echo(
            f"kit: KIT_WEB_BASIC_AUTH is not set; generated for this run: {user}:{password}",
            err=True,
        )
    install_log_correlation()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # actions log their own line
    context = context_for(default_kit().app, settings, credentials)
    click.echo(
        f"kit: console on http://{settings.address}:{settings.port}/"
        + (" (read-only)" if settings.read_only else ""),
        err=True,
    )
    serve(context)
