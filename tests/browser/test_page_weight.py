"""What a phone downloads for the first load of each main page, counted by Chromium on the
wire (the DevTools protocol's encoded bytes: headers and bodies), on a cold cache, from
a hub serving the static files as production does (hashed names, brotli or gzip; see
hub/static_files.py). The hub does not compress HTML (nginx does, docs/performance.md),
so these counts are above what a phone gets behind nginx: under the 150 KB budget here,
under it there. Images are not counted (lazy, as in bench/page_weight.py). Arabic,
French and Kabyle; the pages and the people are those of the 360 px test.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.browser.test_accessibility import main_pages
from tests.browser.test_phone_layout import PHONE, site  # noqa: F401  (fixture)
from tests.servers import PRODUCTION_STATIC

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUDGET_BYTES = 150 * 1024
WAIT_MS = 30_000
NOT_COUNTED = {"Image", "Media", "WebSocket"}


def first_load(browser, server, cookie, language, path):  # noqa: F811
    """The bytes Chromium received for `path` and what it loaded, on a cold cache."""
    # No service worker: its install fetches the shell beside the page's own requests.
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True,
                                  service_workers="block")
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    cdp = context.new_cdp_session(page)
    started: dict[str, str] = {}
    done: dict[str, int] = {}
    cdp.on("Network.requestWillBeSent", lambda e: started.setdefault(e["requestId"], e.get("type", "Other")))
    cdp.on("Network.loadingFinished", lambda e: done.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    cdp.on("Network.loadingFailed", lambda e: done.__setitem__(e["requestId"], 0))
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.status == 200, path
        assert page.get_attribute("html", "lang") == language
        if page.locator("body[data-connection]").count():
            page.wait_for_selector("body[data-connection='online']")
        # Every request counted has finished (the protocol's events come after the load).
        for _ in range(WAIT_MS // 100):
            counted = [r for r, kind in started.items() if kind not in NOT_COUNTED]
            if all(r in done for r in counted):
                break
            page.wait_for_timeout(100)
        counted = [r for r, kind in started.items() if kind not in NOT_COUNTED]
        assert all(r in done for r in counted), f"{path}: requests still loading"
        return sum(done[r] for r in counted), sorted({started[r] for r in counted})
    finally:
        context.close()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_each_main_page_first_load_on_a_phone_is_under_150_kb(site, daphne_factory, browser, language, production_static):  # noqa: F811
    cookie, member_pages, _public_pages, media = site
    env = {"HIRFA_MEDIA_ROOT": str(media), "HIRFA_EMBEDDED_WORKER": "0", **PRODUCTION_STATIC,
           "HIRFA_STATIC_ROOT": str(production_static)}
    server = daphne_factory(env)
    weights = {}
    for path in main_pages(member_pages):
        size, kinds = first_load(browser, server, cookie, language, path)
        assert {"Document", "Stylesheet", "Script"} <= set(kinds), (path, kinds)
        weights[path] = size
    assert len(weights) >= 12
    over = {path: size for path, size in weights.items() if size >= BUDGET_BYTES}
    assert over == {}, over
    print(f"\n{language}: " + ", ".join(f"{p} {s / 1024:.1f} KB" for p, s in weights.items()))
