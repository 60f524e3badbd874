"""A buyer on a phone, in Arabic and in French, through a real daphne server and Chromium:
finds the copper artisan of Tlemcen whichever way he writes it, with the first result on
the first screen; opens his storefront, whose WhatsApp link is right; shares it; asks
about a piece without an account; and the artisan finds the question as a conversation
with the product's card. Screenshots: test-artifacts/buyer-*-<lang>.png."""

from __future__ import annotations

import pytest

from hub.models import Trade
from registry import services
from rooms.models import Room
from tests import factories
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.browser.test_phone_layout import load_reference_data
from tests.registry.conftest import jpeg, wilaya
from tests.servers import ARTIFACTS, daphne_factory, daphne_server, session_cookie  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
WAIT_MS = 30_000


@pytest.fixture
def market(transactional_db, settings, tmp_path):
    """Nadir, a verified copper artisan of Tlemcen who sells a tray; a few others around."""
    settings.MEDIA_ROOT = tmp_path / "media"
    load_reference_data()
    copper = Trade.objects.get(slug="copperware")
    pottery = Trade.objects.get(slug="pottery-ceramics")
    nadir = factories.artisan("nadir", trades=[copper], wilaya_=wilaya(13), display_name="نذير بومدين")
    karim = factories.karim(pottery_=pottery, tlemcen_=wilaya(13))
    services.census_update(user=nadir, commune="Tlemcen", whatsapp="0555 12 34 56", public_channels=["whatsapp"])
    services.verification_submit(user=nadir, card_number="13/0421-B", issuing_chamber="CAM Tlemcen", card_photo=jpeg())
    services.verification_review(moderator=karim, artisan_id=nadir.pk, approve=True)
    services.product_create(user=nadir, title="Plateau en cuivre ciselé", price_dzd=12000,
                            photos=[jpeg(640, 480, "darkgoldenrod")])
    factories.artisan("salim", trades=[copper], wilaya_=wilaya(25), display_name="Salim Bencheikh")
    for i in range(12):
        factories.artisan(f"potier{i}", trades=[pottery], wilaya_=wilaya(13), display_name=f"Potier {i}")
    return {"nadir": nadir, "media": settings.MEDIA_ROOT}


def phone_page(browser, server, language):  # noqa: F811
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_a_buyer_finds_the_copper_artisan_of_tlemcen(market, daphne_factory, browser, language):  # noqa: F811
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(market["media"]), "HIRFA_DEBUG": "1"})
    page, errors = phone_page(browser, server, language)
    page.goto(f"{server.url}/artisans/")
    for query in ("nhas tlemcen", "نحاس", "cuivre"):
        box = page.locator("#q")
        box.fill("")
        box.type(query, delay=20)
        # Suggestions as one types: the trade the words mean is offered.
        page.wait_for_selector("#suggestions:not([hidden]) li[data-kind='trade']")
        box.press("Enter")
        page.wait_for_selector(".artisan-result")
        first = page.locator(".artisan-result").first
        assert first.get_attribute("data-username") == "nadir" or \
            first.locator(".artisan-card").get_attribute("data-username") == "nadir", query
        # The first result is on the first screen of a phone, not below the filters.
        top = first.bounding_box()
        assert top is not None and top["y"] + top["height"] <= PHONE["height"], (query, top)
    page.screenshot(path=str(ARTIFACTS / f"buyer-search-{language}.png"), full_page=True)

    # The storefront: WhatsApp in one tap, to the artisan's number in international form.
    page.locator(".artisan-result a").first.click()
    page.wait_for_selector(".contact-links")
    assert page.get_attribute(".contact-whatsapp", "href") == "https://wa.me/213555123456"
    # Share: no share sheet in a headless browser, so the link is copied.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.click(".share-button")
    page.wait_for_selector(".share-box[data-state='copied']")
    assert page.evaluate("navigator.clipboard.readText()") == f"{server.url}/artisans/nadir/"
    page.screenshot(path=str(ARTIFACTS / f"buyer-storefront-{language}.png"), full_page=True)

    # A question about the tray, without an account.
    page.locator(".product-tile a").first.click()
    page.fill("#enquiry-name", "Lamia")
    page.fill("#enquiry-contact", "lamia@example.org")
    page.fill("#enquiry-text", "Livrez-vous à Alger ? هل توصلون إلى الجزائر؟")
    page.click(".enquiry-form button[type=submit]")
    page.wait_for_selector(".flash-success")
    assert errors == []

    # The artisan sees it as a conversation whose first message carries the product's card.
    room = Room.objects.get(memberships__user=market["nadir"], kind="group")
    cookie = session_cookie(market["nadir"])
    artisan, errors = phone_page(browser, server, language)
    artisan.context.add_cookies([{"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    artisan.goto(f"{server.url}/rooms/{room.pk}/")
    card = artisan.wait_for_selector(".msg-card[data-kind='enquiry']")
    assert "Plateau en cuivre ciselé" in card.inner_text() and "lamia@example.org" in card.inner_text()
    assert artisan.locator(".msg-card img").count() == 1
    assert "هل توصلون" in artisan.inner_text("#messages")
    artisan.screenshot(path=str(ARTIFACTS / f"buyer-enquiry-{language}.png"), full_page=True)
    assert errors == []


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_a_first_visit_shows_featured_pieces_the_map_and_what_hirfa_is(market, daphne_factory, browser, language):  # noqa: F811
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(market["media"]), "HIRFA_DEBUG": "1"})
    page, errors = phone_page(browser, server, language)
    page.goto(f"{server.url}/")
    assert page.url == f"{server.url}/"  # no redirect to the log-in page
    page.wait_for_selector(".featured-pieces .product-tile img")
    page.wait_for_function("() => [...document.querySelectorAll('.featured-pieces img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "Plateau en cuivre ciselé" in page.inner_text(".featured-pieces")
    assert page.locator("svg.census-map g.wilaya").count() >= 58
    assert page.locator("svg.census-map g.wilaya[data-code='13']").first.get_attribute("data-count") == "14"
    assert page.locator("a[href='/accounts/signup/'], a[href$='signup/']").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / f"home-{language}.png"), full_page=True)
    assert errors == []


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_scanning_an_authenticity_tag_shows_the_verified_artisan(market, daphne_factory, browser, language):  # noqa: F811
    tray = market["nadir"].products.get()
    code = services.product_authenticity_code(user=market["nadir"], product_id=tray.pk)
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(market["media"]), "HIRFA_DEBUG": "1"})
    page, errors = phone_page(browser, server, language)
    page.goto(f"{server.url}/a/{code}")
    page.wait_for_selector(".authenticity.auth-ok")
    assert page.get_attribute(".artisan-card", "data-username") == "nadir"
    assert page.locator(".artisan-card .verified-badge").count() == 1
    assert "Plateau en cuivre ciselé" in page.inner_text(".authenticity")
    page.screenshot(path=str(ARTIFACTS / f"authenticity-{language}.png"), full_page=True)
    assert errors == []
