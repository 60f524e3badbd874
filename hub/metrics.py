"""The Prometheus metrics of every Hirfa process (prometheus_client, its default registry).

Each process exposes its own: a hub at ``/metrics`` on its daphne port, an SFU
worker and the job worker on their operations port (`hub.ops_server`). A
Prometheus server scrapes each one (deploy/prometheus.yml) and sums across
processes; the dashboard is deploy/grafana-dashboard.json. nginx answers 404
for ``/metrics`` from outside (deploy/nginx.conf).

What a process measures is cheap to keep (a counter increment, a histogram
observation per live message and process) or read only when scraped (gauges
with a function, collectors).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

# --- hubs ------------------------------------------------------------------------

sockets_open = Gauge("hirfa_sockets_open", "Websockets open on this hub process")
messages_posted = Counter(
    "hirfa_messages_posted_total", "Chat messages stored by this process (retries not counted)"
)
delivery_seconds = Histogram(
    "hirfa_delivery_seconds",
    "From a new message's insertion to its hand-over to this process's sockets (across processes)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
send_queue_closes = Counter(
    "hirfa_send_queue_closes_total", "Sockets closed with 4010 because they could not keep up"
)
bus_outages = Counter("hirfa_bus_outages_total", "Times this process lost its link to the Redis bus")
draining = Gauge("hirfa_draining", "1 while this process drains after SIGTERM (rolling restart)")

# A message frame older than this is an edit or a reaction of an old message, not a delivery.
_DELIVERY_HORIZON_SECONDS = 300.0


def observe_delivery(text: str) -> None:
    """Observe the delivery latency of a live ``message`` frame about to reach local sockets.

    Only new messages count (no edit, deletion or reaction yet): their
    ``created_at`` is when the service inserted them.
    """
    if not text.startswith('{"type":"message"') or '"edited_at"' in text or '"reactions":{}' not in text:
        return
    try:
        created = datetime.fromisoformat(json.loads(text)["created_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return
    age = time.time() - created
    if 0 <= age < _DELIVERY_HORIZON_SECONDS:
        delivery_seconds.observe(age)


def gauge_function(name: str, documentation: str, function: Callable[[], float]) -> Gauge:
    """A gauge read from `function` at each scrape (registered once per process)."""
    gauge = _function_gauges.get(name)
    if gauge is None:
        gauge = _function_gauges[name] = Gauge(name, documentation)
    gauge.set_function(function)
    return gauge


_function_gauges: dict[str, Gauge] = {}


class FunctionCollector(Collector):
    """Gauges with labels, computed at scrape time by `collect_rows` ((name, help, labels, value) rows)."""

    def __init__(self, collect_rows: Callable[[], Iterable[tuple[str, str, dict[str, str], float]]]) -> None:
        self._collect_rows = collect_rows

    def collect(self) -> Iterable[Any]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, documentation, labels, value in self._collect_rows():
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, documentation, labels=sorted(labels))
            family.add_metric([labels[k] for k in sorted(labels)], value)
        return list(families.values())


_collectors: dict[str, Collector] = {}


def collector_register(key: str, collector: Collector) -> None:
    """Register `collector` under `key`, replacing the one registered before under it."""
    old = _collectors.pop(key, None)
    if old is not None:
        REGISTRY.unregister(old)
    REGISTRY.register(collector)
    _collectors[key] = collector


def exposition() -> tuple[bytes, str]:
    """The process's metrics in Prometheus's text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
