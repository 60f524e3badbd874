"""The ASGI application a test server runs: the hub's, serving static files too
(as `hirfa serve` does in the embedded default)."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from hub.asgi import application as hub_application

application = ASGIStaticFilesHandler(hub_application)
