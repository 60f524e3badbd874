"""Gatherings in headless Chromium against a real daphne server, in French and in Arabic.

Karim, a moderator of the wilaya of Tlemcen, schedules a weekly session for the
Tlemcen region room through the form (the recurrence picker previews the four
occurrences before he saves); Amina, an artisan of Tlemcen, answers "going" to the
first one on her phone and finds it in her agenda ("mine"), as a list and as a
month. Screenshots are kept under test-artifacts/ (gatherings-*.png).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rooms.models import Room, RoomKind
from tests import factories
from tests.servers import ARTIFACTS, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_MS = 30_000
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
ALGIERS = "Africa/Algiers"
TITLES = {"fr": "Atelier du vendredi", "ar": "لقاء حرفيي تلمسان"}


def first_friday_after(days: int) -> date:
    day = datetime.now(ZoneInfo(ALGIERS)).date() + timedelta(days=days)
    while day.weekday() != 4:
        day += timedelta(days=1)
    return day


@pytest.fixture
def tlemcen_people(transactional_db):
    """Karim (moderator of the wilaya of Tlemcen) and Amina (artisan of Tlemcen): their
    sessions and the Tlemcen region room.

    Everything touching the database happens here, before the browser starts (see
    tests/browser/conftest.py).
    """
    poterie = factories.trade()
    tlemcen = factories.wilaya()
    karim = factories.karim(pottery_=poterie, tlemcen_=tlemcen)
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    room = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    return session_cookie(karim), session_cookie(amina), room.pk


@pytest.fixture
def server(daphne_factory):
    return daphne_factory({"HIRFA_EMBEDDED_WORKER": "0"})


def open_page(browser, server, cookie, *, language: str, viewport):
    context = browser.new_context(viewport=viewport, locale=language, timezone_id=ALGIERS)
    context.add_cookies(
        [
            {"name": cookie["name"], "value": cookie["value"], "url": server.url},
            {"name": "django_language", "value": language, "url": server.url},
            {"name": "hirfa_tz", "value": ALGIERS, "url": server.url},
        ]
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def assert_language(page, language: str) -> None:
    assert page.get_attribute("html", "lang") == language
    assert page.get_attribute("html", "dir") == ("rtl" if language == "ar" else "ltr")


def assert_fits(page) -> None:
    """Nothing makes the page scroll sideways (the 360 px phone included)."""
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"gatherings-{name}.png"), full_page=True)


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_moderator_schedules_a_weekly_session_and_a_member_goes(tlemcen_people, server, browser, language):
    karim_cookie, amina_cookie, room_id = tlemcen_people
    title = TITLES[language]
    day = first_friday_after(10)

    # Karim schedules from the agenda, on a desktop.
    k = open_page(browser, server, karim_cookie, language=language, viewport=DESKTOP)
    k.goto(f"{server.url}/gatherings/")
    assert_language(k, language)
    k.click("[data-action='schedule']")
    k.wait_for_selector("#gathering-form")
    k.select_option("#id_room", str(room_id))
    k.fill("#id_title", title)
    k.fill("#id_agenda", "Tour de table, puis démonstration de tournage.")
    k.fill("#id_start", f"{day:%Y-%m-%d}T18:00")
    k.fill("#id_duration_minutes", "90")
    k.select_option(".recurrence-picker [data-freq]", "WEEKLY")
    k.fill(".recurrence-picker [data-count]", "4")
    k.wait_for_function("() => document.querySelectorAll('[data-preview] li').length === 4")
    assert k.input_value("#id_rrule") == "FREQ=WEEKLY;COUNT=4"
    assert k.locator("[data-preview-error]").is_hidden()
    shot(k, f"{language}-desktop-form")
    k.set_viewport_size(PHONE)
    assert_fits(k)
    shot(k, f"{language}-phone-form")
    k.set_viewport_size(DESKTOP)
    k.click("#gathering-form button[type='submit']")
    k.wait_for_url(re.compile(r"/gatherings/\d+/$"))
    gathering_id = int(re.search(r"/gatherings/(\d+)/$", k.url).group(1))  # type: ignore[union-attr]
    assert k.locator("#gathering-title").inner_text() == title
    assert k.locator(".occurrence").count() == 4
    assert "18:00" in k.locator(".occurrence time").first.inner_text()
    assert k.locator("[data-action='edit']").count() == 1
    assert k.locator(".occurrence [data-action='split']").count() == 3  # not on the first one
    shot(k, f"{language}-desktop-detail-moderator")

    # Amina, on her phone, sees it in the agenda of everything she may see.
    a = open_page(browser, server, amina_cookie, language=language, viewport=PHONE)
    a.goto(f"{server.url}/gatherings/")
    assert_language(a, language)
    assert a.locator(f".agenda-row[data-gathering='{gathering_id}']").count() == 4
    a.locator(f".agenda-row[data-gathering='{gathering_id}'] .agenda-title").first.click()
    a.wait_for_url(f"**/gatherings/{gathering_id}/")
    assert a.locator("[data-action='edit'], [data-action='move'], [data-action='cancel']").count() == 0
    first = a.locator(".occurrence").first
    first.locator("button[value='going']").click()
    a.wait_for_selector(".occurrence:first-child button[value='going'][aria-pressed='true']")
    assert a.locator(".flash").count() == 1
    assert_fits(a)
    shot(a, f"{language}-phone-detail-member")

    # Her agenda ("mine") holds that one occurrence, at 18:00, marked going.
    a.goto(f"{server.url}/gatherings/?scope=mine")
    rows = a.locator(".agenda-row")
    assert rows.count() == 1
    assert title in rows.first.inner_text()
    assert rows.first.locator(".agenda-time").inner_text() == "18:00"
    assert rows.first.locator(".badge-going").count() == 1
    assert_fits(a)
    shot(a, f"{language}-phone-agenda-mine")

    a.goto(f"{server.url}/gatherings/?view=month&scope=mine&month={day:%Y-%m}")
    assert_language(a, language)
    assert a.locator(".month .month-item").count() == 1
    assert a.locator(".month-days .agenda-row").count() == 1
    assert a.locator(".month-days .agenda-row").is_visible()  # the day list under the grid on phones
    assert_fits(a)
    shot(a, f"{language}-phone-month-mine")

    k.goto(f"{server.url}/gatherings/?view=month&month={day:%Y-%m}")
    assert k.locator(".month .month-item").first.is_visible()
    assert k.locator(".month-days").is_hidden()  # desktops read the grid itself
    shot(k, f"{language}-desktop-month")
    assert k.errors == [] and a.errors == []  # type: ignore[attr-defined]


@pytest.fixture
def weekly_session(tlemcen_people):
    """A weekly session of four Fridays at 18:00 (Algiers), scheduled by Karim."""
    from gatherings import services
    from hub.models import User

    karim_cookie, _amina_cookie, room_id = tlemcen_people
    day = first_friday_after(10)
    gathering = services.gathering_schedule(
        user=User.objects.get(username="karim"),
        room_id=room_id,
        title="Atelier du vendredi",
        start=datetime(day.year, day.month, day.day, 18, 0),
        duration=timedelta(minutes=90),
        rrule="FREQ=WEEKLY;COUNT=4",
    )
    return karim_cookie, gathering.pk


def test_moderator_edits_moves_splits_and_cancels_on_a_phone(weekly_session, server, browser):
    karim_cookie, gathering_id = weekly_session
    k = open_page(browser, server, karim_cookie, language="fr", viewport=PHONE)
    detail = f"{server.url}/gatherings/{gathering_id}/"
    k.goto(detail)

    # Edit the series: the picker reads the saved rule and previews it.
    k.click("[data-action='edit']")
    k.wait_for_selector("#gathering-form")
    # The form is the server's; the picker is filled by the page's module once
    # it has loaded, which on a loaded machine comes a moment later.
    k.wait_for_function("() => document.querySelector('.recurrence-picker [data-freq]').value !== ''")
    assert k.input_value(".recurrence-picker [data-freq]") == "WEEKLY"
    assert k.input_value(".recurrence-picker [data-count]") == "4"
    k.wait_for_function("() => document.querySelectorAll('[data-preview] li').length === 4")
    assert_fits(k)
    shot(k, "fr-phone-edit")
    k.fill("#id_title", "Atelier du vendredi soir")
    k.click("#gathering-form button[type='submit']")
    k.wait_for_url(detail)
    assert k.locator("#gathering-title").inner_text() == "Atelier du vendredi soir"

    # Move the second occurrence one hour later.
    k.locator(".occurrence").nth(1).locator("[data-action='move']").click()
    k.wait_for_selector("#id_start")
    start = k.input_value("#id_start")
    assert start.endswith("T18:00")
    k.fill("#id_start", start.replace("T18:00", "T19:00"))
    assert_fits(k)
    shot(k, "fr-phone-move")
    k.click("#gathering-form button[type='submit']")
    k.wait_for_url(detail)
    second = k.locator(".occurrence").nth(1)
    assert "19:00" in second.locator("time").inner_text()
    assert second.locator(".badge-soft").count() == 1  # "moved"

    # Cancel the first one, after the confirmation page.
    k.locator(".occurrence").first.locator("[data-action='cancel']").click()
    k.wait_for_selector("#cancel-title")
    assert_fits(k)
    shot(k, "fr-phone-cancel")
    k.click("button.btn-danger")
    k.wait_for_url(detail)
    assert k.locator(".occurrence.is-cancelled").count() == 1

    # This one and the following: the last two become 2-hour sessions.
    k.locator(".occurrence").nth(2).locator("[data-action='split']").click()
    k.wait_for_selector("#gathering-form")
    assert k.input_value("#id_rrule") == "FREQ=WEEKLY;COUNT=2"
    k.wait_for_function("() => document.querySelectorAll('[data-preview] li').length === 2")
    k.fill("#id_duration_minutes", "120")
    assert_fits(k)
    shot(k, "fr-phone-split")
    k.click("#gathering-form button[type='submit']")
    k.wait_for_url(re.compile(r"/gatherings/\d+/$"))
    assert k.url != detail
    assert k.locator(".occurrence").count() == 2
    assert "18:00 – 20:00" in k.locator(".occurrence time").first.inner_text()
    k.goto(detail)
    assert k.locator(".occurrence").count() == 2  # the cancelled one and the moved one remain
    assert_fits(k)
    shot(k, "fr-phone-detail-after-changes")
    assert k.errors == []  # type: ignore[attr-defined]


def test_a_repeat_chosen_before_the_page_script_arrives_is_kept(tlemcen_people, server, browser):
    """On a slow link the form is there before its module: a repeat chosen meanwhile
    becomes the rule once the module arrives, instead of being silently dropped."""
    karim_cookie, _amina_cookie, room_id = tlemcen_people
    day = first_friday_after(10)
    k = open_page(browser, server, karim_cookie, language="fr", viewport=PHONE)
    held: list[str] = []

    def hold(route):
        held.append(route.request.url)
        route.abort()

    k.route("**/gatherings/gatherings*.js", hold)
    k.goto(f"{server.url}/gatherings/new?room={room_id}")
    k.wait_for_selector("#gathering-form")
    assert held, "the page's module was not held back"
    k.fill("#id_start", f"{day:%Y-%m-%d}T18:00")
    k.select_option(".recurrence-picker [data-freq]", "WEEKLY")
    k.fill(".recurrence-picker [data-count]", "4")
    # The module arrives now.
    k.unroute("**/gatherings/gatherings*.js")
    k.add_script_tag(url=held[0], type="module")
    k.wait_for_function("() => document.querySelectorAll('[data-preview] li').length === 4")
    assert k.input_value("#id_rrule") == "FREQ=WEEKLY;COUNT=4"
    assert k.errors == []  # type: ignore[attr-defined]
