"""axe-core on every main page, in Arabic and French, on a phone and a desktop: no
serious or critical violation. The pages and the people are those of the 360 px test
(test_phone_layout.py); axe-core comes from npm (package.json, installed by .ci/run).
One browser and one server for the module's run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.browser.test_phone_layout import site  # noqa: F401  (fixture)
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("HIRFA_AXE", ROOT / "node_modules" / "axe-core" / "axe.min.js"))
VIEWPORTS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 900}}
LANGUAGES = ["ar", "fr", "kab"]
WAIT_MS = 30_000
RUN_AXE = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
              summary: (v.nodes[0] && v.nodes[0].failureSummary || '').slice(0, 160)})))"""


def violations(browser, server, cookie, language, viewport, paths):  # noqa: F811
    # bypass_csp: axe is injected as an inline script, which the pages' policy forbids.
    context = browser.new_context(viewport=viewport, locale=language, bypass_csp=True)
    cookies = [{"name": "django_language", "value": language, "url": server.url}]
    if cookie:
        cookies.append({"name": cookie["name"], "value": cookie["value"], "url": server.url})
    context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    found = []
    try:
        for path in paths:
            page.goto(f"{server.url}{path}")
            if page.locator("body[data-connection]").count():
                page.wait_for_selector("body[data-connection='online']")
            page.add_script_tag(path=str(AXE))
            for v in page.evaluate(RUN_AXE):
                found.append(f"{language} {viewport['width']}px {path}: {v}")
    finally:
        context.close()
    return found


MAIN_PAGES = ("/rooms/", "/gatherings/", "/artisans/", "/exchange/", "/census/", "/registry/", "/notifications/",
              "/me/", "/profile/", "/moderation/")


def main_pages(paths: list[str]) -> list[str]:
    """The main pages of the member's list: the lists, and one of each kind of detail page."""
    details = ("/rooms/", "/gatherings/", "/products/", "/artisans/")
    kept = [p for p in paths if p in MAIN_PAGES]
    for prefix in details:
        kept += [p for p in paths if p.startswith(prefix) and p not in MAIN_PAGES and not p.endswith("new")][:2]
    return list(dict.fromkeys(kept))


@pytest.mark.timeout(900)
def test_no_serious_or_critical_violation(site, daphne_factory, browser):  # noqa: F811
    if not AXE.exists():
        skip_or_fail(f"axe-core is missing at {AXE} (npm install)")
    cookie, member_pages, _public_pages, media = site
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(media), "HIRFA_EMBEDDED_WORKER": "0"})
    found = []
    for language in LANGUAGES:
        for viewport in VIEWPORTS.values():
            found += violations(browser, server, None, language, viewport, ["/login/", "/signup/", "/census/"])
            found += violations(browser, server, cookie, language, viewport, main_pages(member_pages))
    assert found == [], "\n".join(found)
