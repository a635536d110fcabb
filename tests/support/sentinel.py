"""A primary, a replica and three sentinels, all real redis-server processes on free ports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from project.up.redis_server import RedisServer, free_port

MASTER = "kitmaster"


class ReplicaServer(RedisServer):
    def __init__(self, directory: Path, primary: RedisServer, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.primary = primary

    def command(self) -> list[str]:
        auth = ["--masterauth", self.password] if self.password else []
        return [*super().command(), "--replicaof", "127.0.0.1", str(self.primary.port), *auth]


class SentinelServer(RedisServer):
    """``redis-server sentinel.conf --sentinel``: Sentinel rewrites its config file, so each
    one gets its own, written here."""

    def __init__(self, directory: Path, primary: RedisServer, quorum: int = 2) -> None:
        super().__init__(directory)
        self.primary = primary
        self.quorum = quorum

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"logfile {self.logfile}",
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} {self.quorum}",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 10000",
            f"sentinel parallel-syncs {MASTER} 1",
        ]
        if self.primary.password:
            lines.append(f"sentinel auth-pass {MASTER} {self.primary.password}")
        config.write_text("\n".join(lines) + "\n")
        return [self.binary, str(config), "--sentinel"]


class SentinelSetup:
    """The whole group; ``url`` is what the kit's REDIS_URL gets."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.primary = RedisServer(directory / "primary", appendonly=True, password=password)
        self.replica = ReplicaServer(
            directory / "replica", self.primary, appendonly=True, password=password
        )
        self.sentinels = [
            SentinelServer(directory / f"sentinel-{i}", self.primary) for i in range(3)
        ]
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return ";".join(f"sentinel://{auth}127.0.0.1:{s.port}/0" for s in self.sentinels)

    def start(self, timeout: float = 30.0) -> SentinelSetup:
        self.primary.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise AssertionError("sentinels did not see the replica and each other in time")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            for sentinel in self.sentinels:
                client = redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True)
                replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER)  # type: ignore[no-untyped-call]
                others = client.execute_command("SENTINEL", "SENTINELS", MASTER)  # type: ignore[no-untyped-call]
                client.close()
                if not replicas or len(others) < len(self.sentinels) - 1:
                    return False
            link = redis.Redis(port=self.replica.port, password=self.password, socket_timeout=1)
            synced = link.info("replication").get("master_link_status") == "up"
            link.close()
            return bool(synced)
        except redis.RedisError:
            return False

    def primary_port(self) -> int:
        client = redis.Redis(port=self.sentinels[0].port, socket_timeout=1, decode_responses=True)
        try:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
            return int(port)
        finally:
            client.close()

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.kill()


__all__ = ["MASTER", "ReplicaServer", "SentinelServer", "SentinelSetup", "free_port"]
