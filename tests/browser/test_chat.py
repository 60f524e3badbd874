"""Two artisans chat in a room through a real daphne server, each in his own
browser context: once in French and once in Arabic (the page is right-to-left).
A screenshot of each page is kept under test-artifacts/."""

from __future__ import annotations

import pytest

from rooms.models import Room, RoomKind
from tests import factories
from tests.servers import ARTIFACTS, DaphneServer, open_signed_in, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_MS = 30_000
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


def open_room(browser, server: DaphneServer, cookie, room: Room, *, language: str, viewport):
    return open_signed_in(browser, server, cookie, f"/rooms/{room.pk}/", language=language, viewport=viewport)


def say(page, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")


def message(page, text: str):
    """The message whose own text (not a quote of it) holds `text`."""
    return page.locator("#messages .msg").filter(has=page.locator(".msg-text", has_text=text))


@pytest.fixture
def people(transactional_db):
    """Amina, Yacine and Nadia (who moderates the guild): their sessions, and the pottery guild.

    Everything touching the database happens here, before the browser starts: under
    Playwright's event loop Django would open a separate, context-local connection.
    """
    poterie = factories.trade()
    tlemcen = factories.wilaya()
    amina = factories.amina(pottery_=poterie, tlemcen_=tlemcen)
    yacine = factories.yacine(pottery_=poterie)
    nadia = factories.nadia(pottery_=poterie)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    return session_cookie(amina), session_cookie(yacine), session_cookie(nadia), guild


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_two_artisans_chat(people, daphne_server, browser, language):
    amina, yacine, _karim, guild = people
    # Amina on a phone, Yacine on a desktop.
    a = open_room(browser, daphne_server, amina, guild, language=language, viewport=PHONE)
    y = open_room(browser, daphne_server, yacine, guild, language=language, viewport=DESKTOP)
    expected_dir = "rtl" if language == "ar" else "ltr"
    for page in (a, y):
        assert page.get_attribute("html", "lang") == language
        assert page.get_attribute("html", "dir") == expected_dir

    # Presence: each sees the other online.
    y.wait_for_selector("#online li:has-text('Amina')")
    a.wait_for_function("() => document.querySelector('#online-count').textContent.includes('2')")

    # Amina writes with light markdown; Yacine sees it rendered, as text nodes.
    say(a, "Salam **Yacine**, le four est _prêt_ https://example.org/four")
    received = message(y, "le four est")
    received.wait_for()
    assert received.locator("strong").inner_text() == "Yacine"
    assert received.locator("em").inner_text() == "prêt"
    assert received.locator("a").get_attribute("href") == "https://example.org/four"
    assert received.locator(".msg-text").get_attribute("dir") == "auto"

    # Typing indicator, then an Arabic reply quoting her message.
    y.fill("#text", "ش")
    y.dispatch_event("#text", "input")
    a.wait_for_selector("#typing:has-text('Yacine Haddad')")
    received.locator(".more").click()
    received.locator("[data-action='reply']").click()
    say(y, "شكرا، سآتي غدا")
    reply = message(a, "شكرا")
    reply.wait_for()
    assert reply.locator(".quote").inner_text().count("le four est") == 1
    assert reply.locator(".msg-text").get_attribute("dir") == "auto"

    # A reaction from Yacine reaches Amina.
    mine = message(a, "le four est")
    received.locator(".more").click()
    received.locator("[data-action='react'][data-emoji='👍']").click()
    mine.locator(".reaction:has-text('👍') .count").wait_for()
    assert mine.locator(".reaction:has-text('👍') .count").inner_text() == "1"

    # Markup is never interpreted.
    say(a, '<img src=x onerror="window.pwned=1"> `<b>code</b>` [x](javascript:alert(1))')
    hostile = message(y, "onerror")
    hostile.wait_for()
    assert hostile.locator(".msg-text img, .msg-text b").count() == 0
    assert hostile.locator(".msg-text code").inner_text() == "<b>code</b>"
    assert hostile.locator(".msg-text a").count() == 0
    assert y.evaluate("window.pwned") is None

    # Amina edits, then deletes her first message; Yacine sees both changes.
    mine.locator(".more").click()
    mine.locator("[data-action='edit']").click()
    a.fill("#text", "Salam, le four est prêt demain")
    a.click("#send")
    y.wait_for_selector("#messages .msg:has-text('prêt demain') .edited")

    # Yacine's socket drops; Amina posts meanwhile; he resumes with every message once.
    y.evaluate("window.hirfaHub.ws.close()")
    for i in range(3):
        say(a, f"pendant la coupure {i}")
    for i in range(3):
        message(y, f"pendant la coupure {i}").wait_for()
    y.wait_for_selector("body[data-connection='online']")
    for i in range(3):
        assert message(y, f"pendant la coupure {i}").count() == 1
        assert message(a, f"pendant la coupure {i}").count() == 1
    assert a.locator(".outbox .msg").count() == 0  # every send acked

    edited = message(a, "prêt demain")
    edited.locator(".more").click()
    edited.locator("[data-action='delete']").click()
    y.wait_for_selector("#messages .msg.deleted")

    # Members have no moderator controls.
    other = message(a, "شكرا")
    other.locator(".more").click()
    assert other.locator("[data-action='report']").count() == 1
    assert other.locator("[data-action='ban'], [data-action='mute']").count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    a.screenshot(path=str(ARTIFACTS / f"chat-{language}-phone-amina.png"))
    y.screenshot(path=str(ARTIFACTS / f"chat-{language}-desktop-yacine.png"))
    assert a.errors == [] and y.errors == []  # type: ignore[attr-defined]


def test_language_switch_and_rooms_page(people, daphne_server, browser):
    amina, yacine, _karim, guild = people
    a = open_room(browser, daphne_server, amina, guild, language="fr", viewport=PHONE)
    assert a.get_attribute("html", "dir") == "ltr"
    a.click(".lang button[value='ar']")
    a.wait_for_selector("html[dir='rtl'][lang='ar']")
    a.wait_for_selector("body[data-connection='online']")

    # The rooms list counts what arrives while Amina looks at it.
    a.goto(f"{daphne_server.url}/rooms/")
    a.wait_for_function("() => window.hirfaHub && window.hirfaHub.ready")
    a.wait_for_function("() => document.querySelectorAll('#status:not([hidden])').length === 0")
    y = open_room(browser, daphne_server, yacine, guild, language="fr", viewport=DESKTOP)
    say(y, "un")
    say(y, "deux")
    badge = a.locator(f"[data-room='{guild.pk}'] [data-unread] .count")
    a.wait_for_function(
        "n => document.querySelector(`[data-room='${n}'] [data-unread] .count`).textContent === '2'",
        arg=guild.pk,
    )
    assert badge.inner_text() == "2"
    ARTIFACTS.mkdir(exist_ok=True)
    a.screenshot(path=str(ARTIFACTS / "rooms-ar-phone.png"), full_page=True)
    assert a.errors == []  # type: ignore[attr-defined]


def test_moderator_sees_and_uses_the_moderation_controls(people, daphne_server, browser):
    _amina, yacine, nadia, guild = people
    y = open_room(browser, daphne_server, yacine, guild, language="en", viewport=DESKTOP)
    k = open_room(browser, daphne_server, nadia, guild, language="en", viewport=DESKTOP)
    say(y, "Buy my vases at a discount!!!")
    spam = message(k, "Buy my vases")
    spam.wait_for()
    spam.locator(".more").click()
    assert spam.locator("[data-action='mute']").count() == 1
    assert spam.locator("[data-action='ban']").count() == 1
    k.screenshot(path=str(ARTIFACTS / "moderator-en-desktop.png"))

    # Nadia mutes Yacine for 10 minutes: Yacine's composer is disabled at once.
    spam.locator("[data-action='mute']").click()
    k.click("#mute-dialog button[value='ok']")
    y.wait_for_selector("#text:disabled")
    assert y.locator("#muted-notice").is_visible()

    # Nadia deletes the message; Yacine sees it deleted.
    spam.locator(".more").click()
    spam.locator("[data-action='delete']").click()
    y.wait_for_selector("#messages .msg.deleted")
    assert k.errors == [] and y.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", ["ar", "fr"])
def test_a_finger_swiping_a_message_toward_the_lines_end_answers_it(people, daphne_server, browser, language):
    """On a phone: a short swipe toward the end of the line (right in French, left in
    Arabic) starts a reply; a swipe the other way or a vertical one does not."""

    amina, _yacine, _karim, guild = people
    context = browser.new_context(viewport=PHONE, locale=language, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": amina["name"], "value": amina["value"], "url": daphne_server.url},
                         {"name": "django_language", "value": language, "url": daphne_server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{daphne_server.url}/rooms/{guild.pk}/")
    page.wait_for_selector("body[data-connection='online']")
    say(page, "Qui vient au souk jeudi ?")
    target = message(page, "souk jeudi")
    target.wait_for()
    target.locator(".msg-text").wait_for()
    cdp = context.new_cdp_session(page)
    box = target.bounding_box()
    toward_end = -1 if language == "ar" else 1

    def swipe(dx: float, dy: float = 0) -> None:
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for step in range(1, 9):
            cdp.send("Input.dispatchTouchEvent",
                     {"type": "touchMove", "touchPoints": [{"x": x + dx * step / 8, "y": y + dy * step / 8}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    swipe(-100 * toward_end)  # toward the line's start: nothing
    swipe(0, 120)  # a scroll: nothing
    assert page.locator("#context").is_hidden()
    swipe(100 * toward_end)
    page.wait_for_selector("#context:not([hidden])")
    assert "Amina" in page.locator("#context-text").inner_text()
    say(page, "Moi !")
    reply = message(page, "Moi !")
    reply.wait_for()
    assert "souk jeudi" in reply.locator(".quote").inner_text()
    assert errors == []
    context.close()
