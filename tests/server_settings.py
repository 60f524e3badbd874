"""Settings for a server process started by the tests: hub.settings, pointed at
the test database of the pytest process that started it.

`HIRFA_TEST_DATABASE_NAME` names that database (the SQLite file, or the
PostgreSQL database when DATABASE_URL is set); everything else, REDIS_URL
included, comes from the same environment as the tests.
"""

from __future__ import annotations

import os

from hub.settings import *
from hub.settings import DATABASES

_name = os.environ.get("HIRFA_TEST_DATABASE_NAME")
if _name:
    DATABASES["default"]["NAME"] = _name
