"""Headless Chromium (Debian's, driven by Playwright) on a storefront and the census
map, in Arabic and in French, through a real daphne server. Screenshots are kept
under test-artifacts/ (registry-storefront-<lang>.png, registry-census-<lang>.png)."""

from __future__ import annotations

import re

import pytest

from registry import services
from tests import factories
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.registry.conftest import jpeg, wilaya
from tests.servers import ARTIFACTS, daphne_factory, daphne_server, session_cookie  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_MS = 30_000


@pytest.fixture
def shop(transactional_db, reference_data, settings, tmp_path):
    """Amina's shop with two products, and a few artisans for the map; all written before the browser starts."""
    settings.MEDIA_ROOT = tmp_path / "media"
    poterie = factories.trade()
    amina = factories.amina(pottery_=poterie, tlemcen_=wilaya(13))
    services.census_update(user=amina, commune="Nedroma", years_of_practice=12,
                           whatsapp="0555123456", public_channels=["whatsapp"])
    services.product_create(user=amina, title="Jarre de Nedroma", price_dzd=4500,
                            labels=["artisanat_algerie"], photos=[jpeg(640, 480, "sienna")])
    services.product_create(user=amina, title="طاجين تقليدي", photos=[jpeg(480, 480, "peru")])
    for i, code in enumerate([16, 16, 16, 31, 31, 25, 30, 47]):
        factories.artisan(f"a{i}", trades=[poterie], wilaya_=wilaya(code))
    return session_cookie(amina), settings.MEDIA_ROOT


def open_page(browser, server, path, language, cookie=None):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale=language)
    cookies = [{"name": "django_language", "value": language, "url": server.url}]
    if cookie:
        cookies.append({"name": cookie["name"], "value": cookie["value"], "url": server.url})
    context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}{path}")
    return page, errors


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_storefront_and_census_map_in_a_browser(shop, daphne_factory, browser, language):  # noqa: F811
    _cookie, media = shop
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(media), "HIRFA_DEBUG": "1"})
    expected_dir = "rtl" if language == "ar" else "ltr"

    page, errors = open_page(browser, server, "/artisans/amina/", language)
    assert page.get_attribute("html", "dir") == expected_dir
    page.wait_for_selector(".product-tile img")
    assert page.locator(".product-tile").count() == 2
    # The thumbnail really loads (naturalWidth > 0), served by the hub.
    page.wait_for_function("() => [...document.querySelectorAll('.product-tile img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "0555123456" in page.inner_text(".contacts")
    assert page.get_attribute("meta[property='og:image']", "content").startswith(server.url + "/media/")
    page.screenshot(path=str(ARTIFACTS / f"registry-storefront-{language}.png"), full_page=True)
    assert errors == []

    page, errors = open_page(browser, server, "/census/", language)
    assert page.get_attribute("html", "dir") == expected_dir
    page.wait_for_selector("svg.census-map")
    assert page.locator("svg.census-map g.wilaya").count() == 69
    algiers = page.locator("svg.census-map g.wilaya[data-code='16']").first
    assert algiers.get_attribute("data-count") == "3"
    box = page.locator("svg.census-map").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 300
    # The legend is text at the page's size, not a few pixels of the scaled SVG.
    legend = page.locator(".census-legend li").first
    assert float(legend.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 14
    assert page.locator(".census-legend li").count() >= 2
    # A tap on a wilaya says its name and count (a phone has no hover for the title).
    algiers.locator("path").dispatch_event("click")  # what a tap sends (the labels lie over the paths)
    said = page.inner_text("#census-picked")
    assert said.startswith("16 · ") and re.search(r"(?<!\d)3(?!\d)", said[5:]), said
    page.screenshot(path=str(ARTIFACTS / f"registry-census-{language}.png"), full_page=True)
    assert errors == []
