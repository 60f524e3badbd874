"""No page is wider than a 360 px phone, in any interface language.

Every main page is loaded in headless Chromium at 360 × 740, as an anonymous
visitor where the page is public and as a member (Karim: a potter of Tlemcen who
moderates his trade and his wilaya, has submitted his artisan card, sells a product
and posted on the exchange, so every item of the navigation and every card shows).
A page fails when the document scrolls sideways, or when a control of the top or
bottom bar lies outside the screen (a navigation that scrolls sideways hides it).
One browser and one server serve the whole module.
"""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings

from gatherings import services as gathering_services
from hub.models import Wilaya
from registry import selectors as registry_selectors
from registry import services as registry_services
from rooms import services as room_services
from rooms.models import Room, RoomKind
from tests import factories
from tests.browser.conftest import browser  # noqa: F401  (fixture)
from tests.registry.conftest import jpeg
from tests.servers import ARTIFACTS, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}
WAIT_MS = 30_000
LANGUAGES = [code for code, _name in django_settings.LANGUAGES]
LONG_TRADE = "Poterie et céramique traditionnelle des Traras"

# Elements wider than the screen, the widest first; controls of the bars off screen.
OVERFLOW_PROBE = """() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (el.classList.length ? '.' + [...el.classList].join('.') : '');
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 1 || r.left < -1)) wide.push([Math.round(r.right - r.left), name(el)]);
  }
  wide.sort((a, b) => b[0] - a[0]);
  const hidden = [];
  for (const el of document.querySelectorAll('.topbar a, .topbar button, .tabbar a, .tabbar button')) {
    const r = el.getBoundingClientRect();
    if (!r.width || getComputedStyle(el).visibility === 'hidden') continue;
    if (r.right > width + 1 || r.left < -1) hidden.push(name(el) + ' ' + el.textContent.trim());
  }
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 4), hidden};
}"""

# The meeting page as in a call: its header's data-usage line, at its longest, in the page's language.
IN_CALL_HEADER = """() => {
  const T = JSON.parse(document.getElementById('i18n').textContent);
  const fill = (text, values) => text.replace(/%\\((\\w+)\\)s/g, (_, key) => values[key]);
  document.body.dataset.phase = 'in';
  document.getElementById('meter').hidden = false;
  document.getElementById('meter-text').textContent = fill(T.usage, {up: '1,3 MB', down: '416,4 kB', rate: '3,4 MB'});
  const estimate = document.getElementById('reception-estimate');
  estimate.hidden = false;
  estimate.textContent = fill(T.connectionEstimate, {kbps: '1 088'});
}"""


def load_reference_data() -> None:
    """The 58 wilayas and the trades, put back if an earlier transactional test flushed them."""
    if Wilaya.objects.filter(code__lte=58).count() < 58:
        for name in ("hub.migrations.0002_wilayas", "hub.migrations.0003_trades", "hub.migrations.0012_trade_icon"):
            importlib.import_module(name).load(django_apps, None)


@pytest.fixture
def site(transactional_db, settings, tmp_path):
    """Everything the pages show, written before the browser starts (see conftest.py)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    load_reference_data()
    tlemcen = Wilaya.objects.get(code=13)
    poterie = factories.trade("poterie-traras", LONG_TRADE, "الفخار والخزف التقليدي لجبال ترارة")
    karim = factories.karim(pottery_=poterie, tlemcen_=tlemcen)  # moderates Tlemcen
    factories.moderator_of(karim, trade_=poterie)  # and, here, the Traras potters' guild too
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    region = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    for i in range(6):
        room_services.send_buckets.reset()
        room_services.message_post(
            user=amina, room_id=guild.pk, client_id=f"m{i}",
            text=f"Salam @karim, le four est prêt ({i}) — https://example.org/un/lien/tres/long/sans/espace/{'x' * 60}",
        )
    registry_services.census_update(user=karim, commune="Nedroma", years_of_practice=12,
                                    whatsapp="0555123456", public_channels=["whatsapp"])
    registry_services.verification_submit(user=karim, card_number="CAM-13-2020-004512",
                                          issuing_chamber="Chambre de l'artisanat de Tlemcen",
                                          card_photo=jpeg(640, 400))
    product = registry_services.product_create(
        user=karim, title="Jarre de Nedroma à deux anses, décor berbère", price_dzd=4500,
        labels=["artisanat_algerie"], photos=[jpeg(640, 480)],
    )
    registry_services.exchange_post(user=karim, kind="offer", material="clay", quantity="25",
                                    unit="kg", wilaya_id=tlemcen.pk, detail="Argile rouge de Nedroma")
    start = datetime.now(ZoneInfo("Africa/Algiers")).replace(microsecond=0) + timedelta(days=3)
    gathering = gathering_services.gathering_schedule(
        user=karim, room_id=region.pk, title="Atelier du vendredi : émaux et cuisson au bois",
        start=start, duration=timedelta(hours=2), agenda="Émaux, cuisson, questions.",
    )
    # A buyer without an account asked about the jar and Karim answered: the buyer's page.
    enquiry = registry_services.enquiry_send(
        product_id=product.pk, name="Lamia Benali-Ouarab", contact="lamia.benali.ouarab@example.org",
        text="Bonjour, livrez-vous à Alger ? https://example.org/une-tres-longue-adresse-sans-espace-aucun",
        client_key="phone",
    )
    room_services.message_post(user=karim, room_id=enquiry.room_id, client_id="answer",
                               text="Oui, sous trois jours, dans un emballage renforcé.")
    karim.notifications.filter(kind="enquiry").delete()  # the bell test counts the others
    member_pages = [
        "/", "/rooms/", f"/rooms/{guild.pk}/", f"/rooms/{guild.pk}/meeting/",
        "/gatherings/", "/gatherings/new", f"/gatherings/{gathering.pk}/",
        "/artisans/", "/artisans/karim/", f"/products/{product.pk}/", "/products/new",
        "/exchange/", "/census/", "/census/dashboard", "/registry/", "/registry/review/",
        "/profile/", "/members/amina/", "/moderation/", "/password/change/", "/me/", "/notifications/",
    ]
    public_pages = [
        "/", "/login/", "/signup/", "/password/reset/", "/artisans/", "/artisans/karim/",
        f"/products/{product.pk}/", "/census/", registry_selectors.enquiry_link(enquiry),
    ]
    return session_cookie(karim), member_pages, public_pages, settings.MEDIA_ROOT


def widths(browser, server, cookie, language, paths):  # noqa: F811
    """The pages of `paths` that are wider than the phone, each with what sticks out."""
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    cookies = [{"name": "django_language", "value": language, "url": server.url}]
    if cookie:
        cookies.append({"name": cookie["name"], "value": cookie["value"], "url": server.url})
    context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    failures = []
    try:
        for path in paths:
            response = page.goto(f"{server.url}{path}")
            assert response is not None and response.status == 200, f"{path}: {response and response.status}"
            assert page.get_attribute("html", "lang") == language
            if page.locator("body[data-connection]").count():
                page.wait_for_selector("body[data-connection='online']")
            if path.endswith("/meeting/"):
                page.evaluate(IN_CALL_HEADER)
            found = page.evaluate(OVERFLOW_PROBE)
            if found["scroll"] > found["width"] or found["hidden"]:
                who = "member" if cookie else "visitor"
                failures.append(f"{language} {who} {path}: {found}")
                slug = path.strip("/").replace("/", "-") or "home"
                page.screenshot(path=str(ARTIFACTS / f"phone-{language}-{who}-{slug}.png"), full_page=True)
    finally:
        context.close()
    return failures


def test_no_page_is_wider_than_a_phone(site, daphne_factory, browser):  # noqa: F811
    cookie, member_pages, public_pages, media = site
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(media), "HIRFA_EMBEDDED_WORKER": "0"})
    failures = []
    for language in LANGUAGES:
        failures += widths(browser, server, None, language, public_pages)
        failures += widths(browser, server, cookie, language, member_pages)
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("language", ["ar", "fr", "kab"])
def test_the_bottom_bar_and_the_bell_on_a_phone(site, daphne_factory, browser, language):  # noqa: F811
    """Karim (mentioned six times) sees the five tabs and the count in the bell, the tab and
    the title, opens the notification centre from the bar and follows a mention."""
    from django.utils import translation

    with translation.override(language):
        gatherings_label = translation.gettext("Gatherings")
    cookie, _member_pages, _public_pages, media = site
    server = daphne_factory({"HIRFA_MEDIA_ROOT": str(media), "HIRFA_EMBEDDED_WORKER": "0"})
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "django_language", "value": language, "url": server.url},
                         {"name": cookie["name"], "value": cookie["value"], "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/gatherings/")
    tabs = page.locator(".tabbar a")
    assert tabs.count() == 5
    for i in range(5):
        box = tabs.nth(i).bounding_box()
        assert box and box["height"] >= 44 and box["y"] + box["height"] <= PHONE["height"] + 1
    assert page.get_attribute("html", "lang") == language
    assert page.locator(".tabbar a[aria-current='page'] .tab-label").inner_text() == gatherings_label
    # Each tab's icon is drawn from the sprite (no emoji: phones render those differently).
    assert page.locator(".tabbar svg.icon use").count() == 5
    assert page.evaluate(
        "() => [...document.querySelectorAll('.tabbar svg.icon')].every(s => s.getBBox().width > 10)"
    )
    assert page.title().startswith("(6) ")
    assert page.locator(".tabbar [data-unread-count]").inner_text() == "6"
    assert page.locator(".topbar .bell [data-unread-count]").is_visible()
    page.locator(".tabbar a[href='/notifications/']").click()
    page.wait_for_url("**/notifications/")
    assert page.locator("#notifications li.unread").count() == 6
    page.locator("#notifications li a").first.click()
    page.wait_for_url("**/rooms/*/#m-*")
    page.go_back()
    page.reload()
    assert page.title().startswith("(5) ")
    page.screenshot(path=str(ARTIFACTS / f"tabbar-notifications-{language}.png"))
    context.close()
