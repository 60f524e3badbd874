"""The second xdist worker is kept apart from the first (tests/parallel.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT

SHOW = """
import json, os, redis
from django.conf import settings
client = redis.Redis.from_url(settings.REDIS_URL)
client.set("hirfa:test:parallel", os.environ["PYTEST_XDIST_WORKER"])
print(json.dumps({"redis": settings.REDIS_URL, "sfu": [settings.HIRFA_SFU_PORT_MIN, settings.HIRFA_SFU_PORT_MAX],
                  "recordings": str(settings.HIRFA_RECORDINGS_DIR)}))
"""


def settings_of(worker: str, redis_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HIRFA_TEST_WORKER_REDIS", "HIRFA_SFU_PORT_MIN", "HIRFA_RECORDINGS_DIR")}
    env.update({"PYTEST_XDIST_WORKER": worker, "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "tests.settings"})
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + SHOW], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_second_worker_has_its_own_redis_ports_and_recordings(redis_url: str) -> None:
    import redis

    shared = redis.Redis.from_url(redis_url)
    shared.delete("hirfa:test:parallel")
    first, second = settings_of("gw0", redis_url), settings_of("gw1", redis_url)
    assert first["redis"] == redis_url
    assert second["redis"] != redis_url
    assert shared.get("hirfa:test:parallel") == b"gw0"  # gw1's write went to its own server
    assert second["sfu"] == [first["sfu"][0] + 10_000, first["sfu"][1] + 10_000]
    assert second["recordings"] != first["recordings"]
    shared.delete("hirfa:test:parallel")


def test_more_workers_than_the_port_ranges_fit_are_refused() -> None:
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw2"}
    out = subprocess.run([sys.executable, "-c", "import tests.parallel"], check=False, cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "fit two xdist workers" in out.stderr


def test_the_ports_the_tests_name_lie_outside_the_kernels_ephemeral_range() -> None:
    """A port the kernel may hand any client (a connect()'s source port) must not be one a test binds."""
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for worker in ("gw0", "gw1"):
        env = {**os.environ, "PYTEST_XDIST_WORKER": worker}
        out = subprocess.run([sys.executable, "-c", "from tests.parallel import worker_port as p; print(p(40000), p(49999))"],
                             check=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        first, last = (int(n) for n in out.stdout.split())
        assert last < low or first > high, f"{worker}'s ports {first}-{last} overlap the ephemeral range {low}-{high}"
