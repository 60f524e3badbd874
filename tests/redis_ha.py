"""Redis as production runs it (docs/operations.md): a primary, a replica and three
Sentinels, from deploy/redis-sentinel.conf, on loopback ports of their own.

Used by the failover test and by the deploy check; `kill_primary` kills the
primary outright (SIGKILL) and `wait_for_failover` waits until the Sentinels
name the replica as the new primary.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MASTER_NAME = "hirfa"
START_SECONDS = 20


@dataclass
class RedisHA:
    workdir: Path
    ports: Callable[[], int]
    primary_port: int = 0
    replica_port: int = 0
    sentinel_ports: list[int] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @staticmethod
    def missing() -> str:
        """What this machine lacks to run it, or ""."""
        for binary in ("redis-server", "redis-sentinel"):
            if shutil.which(binary) is None:
                return f"{binary} is not installed (apt-get install redis-server redis-sentinel)"
        return ""

    @property
    def sentinels(self) -> str:
        """The value of REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def env(self, db: int = 0) -> dict[str, str]:
        """The settings of a process that reaches this Redis through the Sentinels."""
        return {
            "REDIS_URL": f"redis://127.0.0.1:{self.primary_port}/{db}",
            "REDIS_SENTINELS": self.sentinels,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def _redis(self, name: str, port: int, *extra: str) -> None:
        log = self.workdir / f"{name}.log"
        self.processes[name] = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(log), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )

    def start(self) -> RedisHA:
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.primary_port, self.replica_port = self.ports(), self.ports()
        self.sentinel_ports = [self.ports() for _ in range(3)]
        self._redis("primary", self.primary_port)
        self._redis("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        template = (ROOT / "deploy" / "redis-sentinel.conf").read_text()
        for index, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel-{index}.conf"
            # The deployment's file, on this run's loopback ports (Sentinel rewrites its file).
            conf.write_text(
                template.replace("port 26379", f"port {port}")
                .replace("bind 0.0.0.0", "bind 127.0.0.1")
                .replace("203.0.113.30 6379", f"127.0.0.1 {self.primary_port}")
                .replace("/var/log/redis/sentinel.log", str(self.workdir / f"sentinel-{index}.log"))
                .replace("dir /var/lib/redis", f"dir {self.workdir}")
            )
            self.processes[f"sentinel-{index}"] = subprocess.Popen(
                ["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_SECONDS
        for port in [self.primary_port, self.replica_port, *self.sentinel_ports]:
            while True:
                try:
                    redis.Redis(port=port, socket_connect_timeout=0.5).ping()
                    break
                except redis.RedisError:
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Redis on {port} did not start:\n{self.logs()}") from None
                    time.sleep(0.1)
        # The replica has synchronised and every Sentinel knows it.
        while True:
            info = redis.Redis(port=self.replica_port).info("replication")
            known = [
                redis.Redis(port=p).sentinel_slaves(MASTER_NAME) for p in self.sentinel_ports
            ]
            if info.get("master_link_status") == "up" and all(known):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica or the Sentinels are not ready:\n{self.logs()}")
            time.sleep(0.2)
        return self

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None and not name.startswith("primary"):
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def primary(self) -> tuple[str, int]:
        """The primary the Sentinels name now."""
        import redis

        for port in self.sentinel_ports:
            try:
                answer: Any = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER_NAME)
                host, found = answer
                return str(host), int(found)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no Sentinel answers")

    def kill_primary(self) -> None:
        process = self.processes["primary"]
        process.kill()
        process.wait(timeout=10)

    def wait_for_failover(self, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.primary()[1] != self.replica_port:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no failover within {timeout} s:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self, lines: int = 20) -> str:
        out = []
        for log in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
