"""The operator's files in deploy/ stay in step with the metrics the processes export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_every_metric_the_dashboard_plots_is_exported_and_documented():
    import hub.jobs
    import hub.realtime  # noqa: F401

    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\b(hirfa_[a-z_]+?)(?:_bucket|_total)?\b", e)}
    operations = (ROOT / "docs" / "operations.md").read_text()
    exported = {m.name for m in REGISTRY.collect()}
    # Gauges read at scrape time by the SFU and job workers (signaling/sfu_metrics.py, hub/jobs.py).
    sources = (ROOT / "signaling" / "sfu_metrics.py").read_text() + (ROOT / "hub" / "jobs.py").read_text()
    for name in sorted(used):
        assert name in exported or f'"{name}"' in sources, f"{name} is plotted but nothing exports it"
        assert f"`{name}" in operations, f"{name} is not in docs/operations.md"
