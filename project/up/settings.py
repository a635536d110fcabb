"""``kit up``: where it keeps its state, and where Flower listens."""

from __future__ import annotations

from dataclasses import dataclass

from project.config.env import Env

__all__ = ["UpSettings"]

DEFAULT_STATE_DIR = "var"
DEFAULT_FLOWER_ADDRESS = "127.0.0.1"
DEFAULT_FLOWER_PORT = 5555


@dataclass(frozen=True)
class UpSettings:
    state_dir: str = DEFAULT_STATE_DIR
    flower_address: str = DEFAULT_FLOWER_ADDRESS
    flower_port: int = DEFAULT_FLOWER_PORT
    flower_basic_auth: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> UpSettings:
        return cls(
            state_dir=env.text("KIT_STATE_DIR", DEFAULT_STATE_DIR),
            flower_address=env.text("FLOWER_ADDRESS", DEFAULT_FLOWER_ADDRESS),
            flower_port=env.integer("FLOWER_PORT", DEFAULT_FLOWER_PORT, minimum=1, maximum=65535),
            flower_basic_auth=env.basic_auth("FLOWER_BASIC_AUTH"),
        )
