"""Probes and metrics of the production processes (hub/health.py, hub/metrics.py,
hub/ops_server.py): a hub on daphne with Redis, and the job worker on its
operations port."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async

from gatherings.reminders import reminders_sweep
from rooms.models import Room, RoomKind
from tests import factories
from tests.hubclient import connect_ws, next_frame
from tests.servers import (  # noqa: F401
    ARTIFACTS,
    ROOT,
    daphne_factory,
    free_port,
    server_env,
    session_cookie,
    test_database_name,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of the sample `name{labels}` in a Prometheus exposition, or None."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([-+0-9.e]+|NaN)$"
    for line in text.splitlines():
        found = re.match(pattern, line)
        if found:
            return float(found.group(1))
    return None


async def test_a_hub_is_healthy_ready_and_counts_sockets_rooms_and_messages(daphne_factory, redis_url):  # noqa: F811
    @sync_to_async
    def setup():
        trade, wilaya = factories.trade(), factories.wilaya()
        amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
        room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
        return room.pk, session_cookie(amina)

    room, cookie = await setup()
    server = await asyncio.to_thread(daphne_factory, {"REDIS_URL": redis_url})
    status, body = await asyncio.to_thread(get, f"{server.url}/healthz")
    assert (status, body) == (200, "ok\n")
    status, body = await asyncio.to_thread(get, f"{server.url}/readyz")
    assert status == 200, body
    assert json.loads(body) == {
        "ready": True, "checks": {"database": "ok", "migrations": "ok", "redis": "ok"}
    }
    _, before = await asyncio.to_thread(get, f"{server.url}/metrics")
    assert metric(before, "hirfa_sockets_open") == 0

    ws = await connect_ws(server, cookie)
    try:
        await ws.send(json.dumps({"type": "subscribe", "room": room}))
        await next_frame(ws, "subscribed", room=room)
        await ws.send(json.dumps({"type": "send", "room": room, "client_id": "m1", "text": "Salam"}))
        await next_frame(ws, "message", room=room)
        await ws.send(json.dumps({"type": "send", "room": room, "client_id": "m1", "text": "Salam"}))
        await next_frame(ws, "ack")
        _, text = await asyncio.to_thread(get, f"{server.url}/metrics")
        assert metric(text, "hirfa_sockets_open") == 1
        assert metric(text, "hirfa_rooms_followed") == 1
        assert metric(text, "hirfa_messages_posted_total") == 1  # the retry is not a new message
        assert metric(text, "hirfa_delivery_seconds_count") == 1
        assert metric(text, "hirfa_send_queue_closes_total") == 0
    finally:
        await ws.close()
    for _ in range(100):
        _, text = await asyncio.to_thread(get, f"{server.url}/metrics")
        if metric(text, "hirfa_sockets_open") == 0:
            break
        await asyncio.sleep(0.05)
    assert metric(text, "hirfa_sockets_open") == 0
    assert metric(text, "hirfa_rooms_followed") == 0


def test_a_hub_without_redis_is_alive_but_not_ready(daphne_factory):  # noqa: F811
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = daphne_factory({"REDIS_URL": dead, "HIRFA_SFU_PLACEMENT": "embedded"})
    assert get(f"{server.url}/healthz")[0] == 200
    status, body = get(f"{server.url}/readyz")
    assert status == 503
    checks = json.loads(body)["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("unreachable")


def test_the_job_worker_serves_probes_and_its_queue_on_the_operations_port(transactional_db):
    reminders_sweep.enqueue()
    reminders_sweep.enqueue()
    port = free_port()
    env = server_env(test_database_name(), {"HIRFA_JOBS_TICK_SECONDS": "3600"})
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"worker-{port}.log"
    # The queue is read before the worker takes the jobs: it starts with them already queued,
    # so the probe runs against a worker that is up; the jobs then run and the depth drops.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", "--ops-port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        assert (status, body) == (200, "ok\n")
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and json.loads(body)["checks"]["migrations"] == "ok", body
        while True:
            _, text = get(f"http://127.0.0.1:{port}/metrics")
            # The two sweeps, and the periodic jobs the worker runs once at its start.
            if metric(text, "hirfa_jobs_queued") == 0 and metric(text, "hirfa_jobs_succeeded_last_hour") >= 2:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        assert metric(text, "hirfa_jobs_failed_last_hour") == 0
        assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0, log_path.read_text()
