"""Two pytest-xdist workers on one machine (`make test` runs ``-n 2``), out of each other's way.

pytest-django already gives each worker its own test database (named after the worker). What
they would still share, this module separates:

- ports: the fixed ports and port ranges the tests name (all in 40000–49999) go through
  `worker_port()`, which puts them at 12000–21999 on worker ``gw0`` and 22000–31999 on ``gw1``:
  apart from each other, and below Linux's ephemeral range (32768–60999), from which the kernel
  picks every outgoing connection's own port, so a bind to a named port cannot find it taken by
  some client's connection (it did once under load, at 53500);
- Redis: `own_redis()` starts a Redis server for worker ``gw1`` and points REDIS_URL at it.
  A second database number on the shared server would not do: Redis pub/sub channels (the
  live-event bus) are common to all the databases of a server, and the suite empties keys
  (socket slots, throttles) between tests;
- the recordings folder (`recordings_dir()`), where meeting ids of both databases would meet.

Worker ``gw0`` and a run without xdist use everything as given.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
INDEX = int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0
STRIDE = 10_000
#: The ports the tests name start here (as in the production settings' SFU range) ...
NAMED_FIRST = 40_000
#: ... and are bound from here on worker gw0.
FIRST = 12_000
if INDEX > 1:
    raise RuntimeError(f"the tests' fixed port ranges fit two xdist workers, not {WORKER} (run with -n 2 at most)")

#: Set in the environment once this worker's Redis is up: the servers a test starts inherit the
#: environment (REDIS_URL already points at that Redis) and must not start another.
OWN_REDIS_MARK = "HIRFA_TEST_WORKER_REDIS"


def worker_port(number: int) -> int:
    """`number` (a port the tests name, 40000–49999) on this worker."""
    return number - NAMED_FIRST + FIRST + STRIDE * INDEX


def recordings_dir(base: str) -> str:
    return f"{base}-{WORKER}" if INDEX else base


def own_redis() -> None:
    """On worker gw1 with REDIS_URL set: start a Redis server of its own and point REDIS_URL at it."""
    if not INDEX or not os.environ.get("REDIS_URL") or os.environ.get(OWN_REDIS_MARK):
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"REDIS_URL is set and xdist worker {WORKER} needs a Redis of its own, but there is no "
            "redis-server here to start one (apt-get install redis-server, or run pytest with -n 0)"
        )
    from tests.servers import free_port  # here: the servers a test starts import these settings too

    redis_port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, process)  # the worker's end, normal or on Ctrl-C
    deadline = time.monotonic() + 20
    while not _answers(redis_port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Redis of xdist worker {WORKER} did not start on port {redis_port}")
        time.sleep(0.05)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    os.environ[OWN_REDIS_MARK] = "1"


def _answers(redis_port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", redis_port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
