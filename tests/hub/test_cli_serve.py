"""`hirfa serve` for real: a daphne process on 127.0.0.1 with the embedded default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_serve_migrates_and_answers_http_and_static(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "HIRFA_ENV", "DJANGO_SETTINGS_MODULE")
    }
    env["HIRFA_DATA_DIR"] = str(tmp_path)
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        # Migrating a fresh database comes first; wait for the socket, bounded.
        for _ in range(240):
            if proc.poll() is not None:
                break
            try:
                status, body = get(base + "/login/")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("hirfa serve did not answer")
        log.seek(0)
        output = log.read()
        assert proc.poll() is None, output
        assert status == 200 and b"csrfmiddlewaretoken" in body
        assert "hirfa createadmin" in output
        # Quiet: one line for the migrations, none per step.
        assert "Preparing the database:" in output and "Applying " not in output, output
        assert get(base + "/static/hirfa/hirfa.css")[0] == 200
        assert (tmp_path / "hirfa.sqlite3").exists()
        # The embedded job worker runs its periodic jobs without a line each (a minute of
        # `make run` printed ten "Task id=… state=RUNNING/SUCCESSFUL" lines).
        _wait_for_a_finished_job(tmp_path / "hirfa.sqlite3", proc)
        log.seek(0)
        output = log.read()
        assert "Task id=" not in output and "Starting worker" not in output, output
        assert _listen_backlog(port) >= min(1024, _somaxconn())  # a crowd reconnecting is queued, not dropped
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_for_a_finished_job(database: Path, proc: subprocess.Popen[bytes]) -> None:
    import sqlite3

    for _ in range(240):
        assert proc.poll() is None, "hirfa serve stopped"
        with sqlite3.connect(database) as db:
            done = db.execute(
                "SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status = 'SUCCESSFUL'"
            ).fetchone()[0]
        if done:
            return
        time.sleep(0.5)
    pytest.fail("the embedded job worker finished no job within 2 minutes")


def _somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def _listen_backlog(port: int) -> int:
    """The listen queue of the socket on `port` (`ss` shows it as Send-Q of a listener)."""
    import shutil

    if shutil.which("ss") is None or not Path("/proc/sys/net/core/somaxconn").exists():
        from tests.conftest import skip_or_fail

        skip_or_fail("no `ss` or /proc here: the listen queue cannot be read")
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return max(int(line.split()[2]) for line in out.splitlines() if line.strip())


def test_a_database_that_cannot_be_reached_is_named_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HIRFA_ENV", "DJANGO_SETTINGS_MODULE")}
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/hirfa_nowhere"
    env["HIRFA_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "hirfa: cannot use the database hirfa_nowhere on 127.0.0.1:1" in done.stderr


def test_a_port_it_cannot_listen_on_ends_serve_with_an_error_in_one_line(tmp_path):
    """A hub restarted on a port something else holds (a rolling restart, tests/topology.py)
    said it listened, then exited 0: nothing told its supervisor it was not serving."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HIRFA_ENV", "DJANGO_SETTINGS_MODULE")}
    env["HIRFA_DATA_DIR"] = str(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--quiet"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
        )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Hirfa listens" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert f"hirfa: cannot listen on 127.0.0.1:{port}:" in done.stderr
    assert "Address already in use" in done.stderr
