"""Sign-up step by step on a phone, in Arabic and in French, through daphne and Chromium:
name and password first; the trade found by typing it (in either script); the wilaya
tapped on the map; a phone number instead of an e-mail or a username; then a log-in with
that phone number. Screenshots: test-artifacts/signup-<step>-<lang>.png; the trade step's
icons: signup-trade-icons-<lang>.png."""

from __future__ import annotations

import pytest

from hub.models import User
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.browser.test_phone_layout import load_reference_data
from tests.servers import ARTIFACTS, daphne_factory, daphne_server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
PASSWORD = "nhas-tlemcen-2025"


@pytest.mark.parametrize(("language", "trade_query", "number"), [("ar", "نحاس", "0555 12 34 56"), ("fr", "cuivre", "0661 22 33 44")])
def test_a_copper_smith_signs_up_step_by_step_and_logs_in_with_his_phone(
    transactional_db, daphne_factory, browser, language, trade_query, number  # noqa: F811
):
    load_reference_data()
    server = daphne_factory({"HIRFA_DEBUG": "1"})
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/signup/")

    # Step 1: name and password, nothing else on screen.
    page.wait_for_selector("#signup-form[data-step='1']")
    assert page.is_visible("#id_display_name") and not page.is_visible("#id_wilaya") and not page.is_visible("#id_phone")
    page.click(".signup-step[data-step='1'] [data-step-go='1']")
    assert page.get_attribute("#signup-form", "data-step") == "1"  # the name is required
    page.fill("#id_display_name", "Nadir Boumediene")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.screenshot(path=str(ARTIFACTS / f"signup-1-{language}.png"))
    page.click(".signup-step[data-step='1'] [data-step-go='1']")

    # Step 2: the trade by search; the others hide.
    page.wait_for_selector("#signup-form[data-step='2']")
    page.fill("#trade-search", trade_query)
    visible = [label for label in page.locator("#id_trades label[for]").all() if label.is_visible()]
    assert 1 <= len(visible) <= 3, [label.inner_text() for label in visible]
    visible[0].click()
    page.screenshot(path=str(ARTIFACTS / f"signup-2-{language}.png"))
    page.click(".signup-step[data-step='2'] [data-step-go='1']")

    # Step 3: the wilaya tapped on the map.
    page.wait_for_selector("#signup-form[data-step='3']")
    page.locator("svg.census-map g.wilaya[data-code='13']").first.dispatch_event("click")
    assert page.locator("#id_wilaya option:checked").inner_text().startswith("13 ")
    page.screenshot(path=str(ARTIFACTS / f"signup-3-{language}.png"))
    page.click(".signup-step[data-step='3'] [data-step-go='1']")

    # Step 4: a phone number; no e-mail, no username.
    page.wait_for_selector("#signup-form[data-step='4']")
    page.fill("#id_phone", number)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / f"signup-4-{language}.png"))
    page.click(".signup-submit")
    page.wait_for_url(f"{server.url}/rooms/")
    user = User.objects.get(phone="213" + number.replace(" ", "")[1:])
    assert user.email == "" and user.username.startswith("nadir-boumediene")
    assert user.profile.wilaya.code == 13 and user.profile.trades.get().slug == "copperware"

    # Logging in again with the phone number written another way.
    context.clear_cookies()
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", "+213 " + number[1:])
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"{server.url}/rooms/")
    assert errors == []


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_the_trade_step_draws_each_trade_with_its_icon(transactional_db, daphne_factory, browser, language):  # noqa: F811
    load_reference_data()
    server = daphne_factory({"HIRFA_DEBUG": "1"})
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/signup/")
    page.fill("#id_display_name", "Nadir Boumediene")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click(".signup-step[data-step='1'] [data-step-go='1']")
    page.wait_for_selector("#signup-form[data-step='2']")
    page.locator("#id_trades").screenshot(path=str(ARTIFACTS / f"signup-trade-list-{language}.png"))
    # Every trade's icon: its <use> finds its symbol in the sprite (an unresolved one has
    # no geometry) and is drawn at a readable size beside the name, on the same line.
    icons = page.evaluate(
        """() => [...document.querySelectorAll("#id_trades label[for]")].map((label) => {
            const svg = label.querySelector("svg.trade-icon");
            const use = svg && svg.querySelector("use");
            const geometry = use ? use.getBBox() : { width: 0, height: 0 };
            const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0, top: 0, bottom: 0 };
            const text = label.getBoundingClientRect();
            return { name: label.textContent.trim(), symbol: use ? use.getAttribute("href").split("#")[1] : "",
                     geometry: geometry.width * geometry.height, width: box.width,
                     inside: text.top <= (box.top + box.bottom) / 2 && (box.top + box.bottom) / 2 <= text.bottom };
        })"""
    )
    assert len(icons) >= 30
    for icon in icons:
        assert icon["geometry"] > 0 and icon["width"] >= 16 and icon["inside"], str(icon)
    assert len({icon["symbol"] for icon in icons}) >= 25  # trades have icons of their own
    page.fill("#trade-search", "نحاس" if language == "ar" else "cuivre")
    copper = page.locator("#id_trades label[for]", has_text="النحاسيات" if language == "ar" else "Dinanderie")
    assert copper.locator("svg.trade-icon use").get_attribute("href").endswith("#cooking-pot")
    assert copper.locator("svg.trade-icon").bounding_box()["width"] >= 16
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(ARTIFACTS / f"signup-trade-icons-{language}.png"))
