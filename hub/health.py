"""Liveness and readiness of a Hirfa process, for load balancers and supervisors.

``/healthz`` answers 200 as long as the process serves requests at all.
``/readyz`` answers 200 only when the process can do its work: the database
answers, every migration is applied (an upgrade runs migrations before the new
code, docs/operations.md), and Redis answers when the deployment has it; else
503 with what is wrong. A draining hub (SIGTERM, `hub.shutdown`) is not ready.

The hubs serve both, with ``/metrics``, on their daphne port (`ProbeMiddleware`,
first in the chain: a supervisor probes ``127.0.0.1:8001``, a name no
ALLOWED_HOSTS lists, over plain HTTP, which production would redirect); an SFU
worker and the job worker on their operations port (`hub.ops_server`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from hub import metrics


@dataclass(frozen=True)
class Readiness:
    """The outcome of each check ("ok" or what failed) and whether all passed."""

    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks.values())

    def as_json(self) -> str:
        return json.dumps({"ready": self.ready, "checks": self.checks}, sort_keys=True)


def _check_database() -> str:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _check_migrations() -> str:
    from django.db.migrations.executor import MigrationExecutor

    try:
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"unknown: {type(exc).__name__}"
    return "ok" if not plan else f"{len(plan)} not applied"


def _check_redis() -> str:
    from hub.redis_client import redis_client

    client = redis_client(asynchronous=False)
    try:
        client.ping()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        client.close()
    return "ok"


def readiness(*, draining: bool = False) -> Readiness:
    """Run every check this deployment has (Redis only when it is configured)."""
    checks = {"database": _check_database()}
    checks["migrations"] = _check_migrations() if checks["database"] == "ok" else "unknown"
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    if draining:
        checks["process"] = "draining"
    return Readiness(checks)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    from hub import shutdown

    result = readiness(draining=shutdown.is_draining())
    return HttpResponse(
        result.as_json() + "\n", status=200 if result.ready else 503, content_type="application/json"
    )


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


class ProbeMiddleware:
    """Answers the probes and metrics before the host check and the HTTPS redirect."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
