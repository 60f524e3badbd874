"""The test settings, in one place: hub.settings with what a test run changes.

Used by pytest (`pyproject.toml`) and by the servers the tests start (`tests/servers.py`),
which `HIRFA_TEST_DATABASE_NAME` points at the test database of the pytest process that
started them (the SQLite file, or the PostgreSQL database when DATABASE_URL is set);
everything else, REDIS_URL included, comes from the same environment as the tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests import parallel

parallel.own_redis()  # before hub.settings reads REDIS_URL (a second xdist worker has its own)

from hub.settings import *
from hub.settings import DATABASES, HIRFA_SFU_PORT_MAX, HIRFA_SFU_PORT_MIN

# Accounts are made by the hundred; a slow hash would be most of the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# No job worker thread inside a test server or the test process unless a test asks for one
# (HIRFA_EMBEDDED_WORKER=1): it would poll the test database and outlive the test.
HIRFA_EMBEDDED_WORKER = os.environ.get("HIRFA_EMBEDDED_WORKER") == "1"

# A peer not connected this long after it was made is let go (20 s in production). A loaded CI
# machine can take longer than that to connect the suite's peers; the limit's own tests
# (tests/signaling/test_limits.py) set it to a second.
HIRFA_MEETING_CONNECT_SECONDS = float(os.environ.get("HIRFA_MEETING_CONNECT_SECONDS", "120"))

# The collector set for crowds (hub/collector.py) is for the processes that serve, the test
# servers included; the pytest process imports hub.asgi when it collects the tests, and would
# freeze all it made by then and collect the suite's cycles 14 times less often.
if "pytest" in sys.modules:
    HIRFA_GC_YOUNG_THRESHOLD = 0

_name = os.environ.get("HIRFA_TEST_DATABASE_NAME")
if _name:
    DATABASES["default"]["NAME"] = _name

# Meetings recorded by a test (and by the servers it starts, unless it names its own
# directory) write under a temporary directory, never under the checkout's data/.
if "HIRFA_RECORDINGS_DIR" not in os.environ:
    import tempfile

    HIRFA_RECORDINGS_DIR = Path(parallel.recordings_dir(f"{tempfile.gettempdir()}/hirfa-test-recordings-{os.getuid()}"))

# The embedded SFU's UDP ports, apart per xdist worker unless the environment names them.
if "HIRFA_SFU_PORT_MIN" not in os.environ:
    HIRFA_SFU_PORT_MIN, HIRFA_SFU_PORT_MAX = parallel.worker_port(HIRFA_SFU_PORT_MIN), parallel.worker_port(HIRFA_SFU_PORT_MAX)
