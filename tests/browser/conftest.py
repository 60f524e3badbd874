"""Headless Chromium (Debian's, driven by Playwright) against a real daphne server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from tests.servers import daphne_factory, daphne_server  # noqa: F401  (fixtures)

CHROMIUM = Path(os.environ.get("HIRFA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Chromium browser; skipped (failed under CI=true) when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_or_fail(f"the playwright package is missing: {exc}")
    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse
    # ORM calls; they never run concurrently with it, so the test process allows them.
    # (tests.servers keeps this variable out of the servers' environment.)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        violations = _watch_content_security_policy(instance)
        try:
            yield instance
        finally:
            instance.close()
        # Every page the browser tests open runs under the production policy: a script,
        # style or handler it blocks is a broken page for the artisans too.
        assert violations == [], f"Content-Security-Policy violations: {violations}"


def _watch_content_security_policy(instance: Any) -> list[str]:
    """Collects the CSP violations Chromium reports on the console of every page `instance` opens."""
    violations: list[str] = []

    def listen(context: Any) -> Any:
        context.on(
            "console",
            lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        return context

    new_context, new_page = instance.new_context, instance.new_page
    instance.new_context = lambda *a, **kw: listen(new_context(*a, **kw))
    instance.new_page = lambda *a, **kw: listen(new_page(*a, **kw))
    return violations
