"""Real daphne servers for end-to-end tests, on the pytest process's test database.

Use the fixtures from a conftest (``from tests.servers import daphne_factory,
daphne_server  # noqa: F401``) in tests marked
``@pytest.mark.django_db(transaction=True)``, so that the rows a test creates
are committed and the server process sees them:

    def test_two_servers(daphne_factory):
        a, b = daphne_factory(), daphne_factory()   # two processes, one database
        ...

Each server listens on 127.0.0.1 on a free port, uses the same DATABASE_URL /
REDIS_URL as the tests (or, in the embedded default, the test SQLite file and
the in-memory layer, which then is per process), and serves static files. Its
output goes to a log file whose tail is shown when it fails to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
START_DEADLINE_SECONDS = 60


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DaphneServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def server_env(database_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process on the test database `database_name`."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "HIRFA_TEST_DATABASE_NAME": str(database_name),
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("HIRFA_ENV", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(extra or {})
    return env


def start_daphne(
    *,
    database_name: str,
    extra_env: dict[str, str] | None = None,
    name: str = "daphne",
    port: int | None = None,
    hirfa_serve: bool = False,
) -> DaphneServer:
    """Start daphne on `port` (default: a free one) and return once it answers HTTP.

    `hirfa_serve`: run it as production does, ``hirfa serve`` (which drains on
    SIGTERM, hub/shutdown.py), instead of the ``daphne`` command.
    Raises RuntimeError (with the server's log) if it exits or does not answer
    within START_DEADLINE_SECONDS.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    port = port or free_port()
    log_path = ARTIFACTS / f"{name}-{port}.log"
    env = server_env(database_name, extra_env)
    if hirfa_serve:
        command = [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--no-migrate", "--quiet"]
    else:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                   "--ping-interval", "20", "--ping-timeout", "30", "tests.server_asgi:application"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = DaphneServer(port=port, process=process, log_path=log_path, env=env)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/static/hirfa/hirfa.css", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"daphne did not answer on port {port}:\n{server.log_tail()}")
        time.sleep(0.2)


def test_database_name() -> str:
    """The name of the database the pytest process is using now (its test database)."""
    from django.db import connection

    return str(connection.settings_dict["NAME"])


test_database_name.__test__ = False  # type: ignore[attr-defined]


def session_cookie(user: object) -> dict[str, str]:
    """A logged-in session for `user`, as a cookie for a browser or a websocket client."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}


def open_signed_in(
    browser: Any,
    server: DaphneServer,
    cookie: dict[str, str],
    path: str,
    *,
    language: str,
    viewport: dict[str, int],
    wait_ms: int = 30_000,
    **context_options: Any,
) -> Any:
    """A page of `path` in a new browser context signed in with `cookie` and speaking `language`,
    once its hub socket is online. Its uncaught errors collect in `page.errors`; dialogs are accepted."""
    context = browser.new_context(viewport=viewport, locale=language, **context_options)
    context.add_cookies(
        [
            {"name": cookie["name"], "value": cookie["value"], "url": server.url},
            {"name": "django_language", "value": language, "url": server.url},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(wait_ms)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}{path}")
    page.wait_for_selector("body[data-connection='online']")
    page.errors = errors
    return page


async def hub_socket(server: DaphneServer, cookie: dict[str, str]) -> Any:
    """The hub socket of `server` under the session `cookie` (`session_cookie`), past the
    hello/welcome handshake: a `websockets` client connection."""
    import websockets
    from websockets.typing import Origin

    ws = await websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
        origin=Origin(server.url),
        open_timeout=10,
        max_size=2**20,
    )
    await ws.send(json.dumps({"type": "hello", "v": 1}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def ws_subscribe(ws: Any, room_id: int) -> dict[str, Any]:
    """Subscribe a `hub_socket` to a room; its `subscribed` frame."""
    await ws.send(json.dumps({"type": "subscribe", "room": room_id}))
    return await next_frame(ws, "subscribed", room=room_id)


async def next_frame(ws: Any, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
    """The next frame of type `kind` (matching `match`) on a `hub_socket`, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame


#: What a hub serves its static files from, as production does (with ``HIRFA_STATIC_ROOT``).
PRODUCTION_STATIC = {"HIRFA_STATIC_FINGERPRINTS": "1", "HIRFA_DEBUG": "0"}


def collect_production_static(root: Path) -> None:
    """Collect the static files into ``root`` as production does: hashed names, gzip and
    brotli copies of about a thousand files (a minute of CPU)."""
    env = server_env("unused", {**PRODUCTION_STATIC, "HIRFA_STATIC_ROOT": str(root)})
    subprocess.run([sys.executable, "-m", "hub.cli", "manage", "collectstatic", "--noinput", "--verbosity", "0"],
                   cwd=ROOT, env=env, check=True, timeout=600, capture_output=True)


@pytest.fixture
def daphne_factory(transactional_db: None) -> Iterator[Callable[..., DaphneServer]]:
    """Start any number of daphne servers on this test's database; all stop at teardown."""
    servers: list[DaphneServer] = []
    name = test_database_name()

    def start(
        extra_env: dict[str, str] | None = None, *, port: int | None = None, hirfa_serve: bool = False
    ) -> DaphneServer:
        server = start_daphne(database_name=name, extra_env=extra_env, port=port, hirfa_serve=hirfa_serve)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """One daphne server on this test's database."""
    return daphne_factory()
