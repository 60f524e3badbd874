"""Favourites and followers on a phone, in Arabic and in French, through daphne and Chromium:
Sofia follows Nadir from his storefront and keeps his tray; her favourites page lists both;
Nadir sees one follower on his storefront and one member keeping the tray.
Screenshots: test-artifacts/favourites-<lang>.png."""

from __future__ import annotations

import pytest

from hub.models import Trade
from tests import factories
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.registry.conftest import wilaya
from tests.registry.test_browser_buyer import PHONE, market, phone_page  # noqa: F401  (fixture)
from tests.servers import ARTIFACTS, daphne_factory, daphne_server, session_cookie  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def signed_in(browser, server, language, user):  # noqa: F811
    page, errors = phone_page(browser, server, language)
    cookie = session_cookie(user)
    page.context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    return page, errors


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_a_buyer_follows_an_artisan_and_keeps_a_piece_which_the_artisan_sees(market, daphne_factory, browser, language):  # noqa: F811
    sofia = factories.sofia(weaving_=Trade.objects.get(slug="carpets-weaving"), alger_=wilaya(16))
    nadir = market["nadir"]
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(market["media"]), "HIRFA_DEBUG": "1"})
    page, errors = signed_in(browser, server, language, sofia)

    page.goto(f"{server.url}/artisans/nadir/")
    assert page.get_attribute(".follower-count", "data-count") == "0"
    page.click(".follow-button")
    page.wait_for_selector(".follow-button[aria-pressed='true']")
    assert page.get_attribute(".follower-count", "data-count") == "1"

    page.locator(".product-tile a").first.click()
    page.click(".favourite-button")
    page.wait_for_selector(".favourite-button[aria-pressed='true']")
    assert page.get_attribute(".favourite-count", "data-count") == "1"

    page.goto(f"{server.url}/favourites/")
    assert "Plateau en cuivre ciselé" in page.inner_text(".favourite-pieces")
    assert page.locator(".followed-artisans .artisan-card[data-username='nadir']").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / f"favourites-{language}.png"), full_page=True)
    assert errors == []

    # The artisan sees the counts; he has no button to follow himself.
    artisan, errors = signed_in(browser, server, language, nadir)
    artisan.goto(f"{server.url}/artisans/nadir/")
    assert artisan.get_attribute(".follower-count", "data-count") == "1"
    assert artisan.locator(".follow-button").count() == 0
    artisan.locator(".product-tile a").first.click()
    artisan.wait_for_selector(".favourite-count[data-count='1']")
    assert errors == []

    # Letting go: the page counts it at once.
    page.goto(f"{server.url}/artisans/nadir/")
    page.click(".follow-button[aria-pressed='true']")
    page.wait_for_selector(".follow-button[aria-pressed='false']")
    assert page.get_attribute(".follower-count", "data-count") == "0"


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_the_buttons_toggle_in_place_and_say_what_went_wrong(market, daphne_factory, browser, language):  # noqa: F811
    """With the page's script (registry/static/registry/toggle.js) the buttons toggle without
    reloading the page: aria-pressed, their label and the count change in place; a refusal is
    shown beside the button. Without JavaScript the same forms post and the page comes back.
    Screenshots: test-artifacts/toggle-<lang>.png, toggle-error-<lang>.png."""
    sofia = factories.sofia(weaving_=Trade.objects.get(slug="carpets-weaving"), alger_=wilaya(16))
    nadir = market["nadir"]
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(market["media"]), "HIRFA_DEBUG": "1"})
    page, errors = signed_in(browser, server, language, sofia)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.resource_type) if r.method == "POST" else None)

    page.goto(f"{server.url}/artisans/nadir/")
    page.evaluate("window.stayed = true")  # gone if the page reloads
    before = page.inner_text(".follow-button")
    count_before = page.inner_text(".follower-count")
    page.click(".follow-button")
    page.wait_for_selector(".follow-button[aria-pressed='true']")
    assert page.evaluate("window.stayed === true")
    assert page.inner_text(".follow-button") != before
    assert page.get_attribute(".follower-count", "data-count") == "1"
    assert page.inner_text(".follower-count") != count_before
    assert page.is_hidden(".follow-box .toggle-error")
    assert posts == ["fetch"]
    page.screenshot(path=str(ARTIFACTS / f"toggle-{language}.png"))

    # The artisan leaves meanwhile: the refusal is said beside the button, the page stays.
    nadir.is_active = False
    nadir.save(update_fields=["is_active"])
    page.click(".follow-button")
    page.wait_for_selector(".follow-box .toggle-error:not([hidden])")
    assert page.inner_text(".follow-box .toggle-error").strip()
    assert page.get_attribute(".follow-button", "aria-pressed") == "true"
    assert page.evaluate("window.stayed === true")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / f"toggle-error-{language}.png"))
    nadir.is_active = True
    nadir.save(update_fields=["is_active"])

    # A piece kept in place too.
    page.locator(".product-tile a").first.click()
    page.evaluate("window.stayed = true")
    page.click(".favourite-button")
    page.wait_for_selector(".favourite-button[aria-pressed='true']")
    assert page.get_attribute(".favourite-count", "data-count") == "1"
    assert page.evaluate("window.stayed === true")
    assert errors == []

    # Without JavaScript the form posts and the page comes back with the new state.
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, java_script_enabled=False)
    cookie = session_cookie(sofia)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    plain = context.new_page()
    plain.goto(f"{server.url}/artisans/nadir/")
    assert plain.get_attribute(".follow-button", "aria-pressed") == "true"
    plain.click(".follow-button")
    plain.wait_for_selector(".follow-button[aria-pressed='false']")
    assert plain.get_attribute(".follower-count", "data-count") == "0"
