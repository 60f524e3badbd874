"""The ASGI application a test server runs: the hub's (which serves static files itself,
hub/static_files.py)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from hub.asgi import application as hub_application

application = hub_application
