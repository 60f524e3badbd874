"""The operations port of a process that serves no HTTP of its own (an SFU worker, the
job worker): ``/healthz``, ``/readyz`` and ``/metrics`` (hub/health.py, hub/metrics.py).

A small threaded HTTP server from the standard library, in a daemon thread: the
checks run there (the database in that thread's own connection, closed after
each probe), never on the worker's event loop. It binds to loopback unless told
otherwise; Prometheus and the supervisor reach it on the machine.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server_version = "hirfa-ops"

    def do_GET(self) -> None:
        from django.db import close_old_connections

        from hub import health, metrics

        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                self._answer(200, b"ok\n", "text/plain")
            elif path == "/readyz":
                result = health.readiness(draining=self.server.draining)  # type: ignore[attr-defined]
                status = 200 if result.ready else 503
                self._answer(status, (result.as_json() + "\n").encode(), "application/json")
            elif path == "/metrics":
                body, content_type = metrics.exposition()
                self._answer(200, body, content_type)
            else:
                self._answer(404, b"not found\n", "text/plain")
        finally:
            close_old_connections()

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ops: " + format, *args)


class OpsServer:
    """Serves the operations port until `stop()`; `draining` makes ``/readyz`` answer 503."""

    def __init__(self, *, port: int, host: str = "127.0.0.1") -> None:
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.draining = False  # type: ignore[attr-defined]
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hirfa-ops", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("operations port on %s", self.port)
        return self

    def set_draining(self) -> None:
        self._httpd.draining = True  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def ops_start(port: int | None) -> OpsServer | None:
    """Start the operations port when `port` is given (0: none), else None."""
    if not port:
        return None
    from django.conf import settings

    return OpsServer(port=port, host=getattr(settings, "HIRFA_OPS_BIND_ADDRESS", "127.0.0.1")).start()
