"""Workshop tables in headless Chromium, on phones in French and Arabic.

Nadia (who moderates the pottery guild, in French) hosts the guild's meeting; Amina (in
Arabic) and Yacine are in it. Nadia splits it into tables: both move to their table's
meeting on the same socket, with its own media, and hear and see each other there (the
first to reach the table used to be heard by nobody: his receiver on the SFU had started
without RED). She sends a message to every table, visits one (its pictures reach her),
and brings everyone back. Screenshots under test-artifacts/tables-*.png.
"""

from __future__ import annotations

import pytest

from rooms.models import Room, RoomKind
from signaling.models import MeetingTable
from tests import factories
from tests.browser.test_meeting import (  # noqa: F401 (fixtures)
    PHONE,
    meeting_browser,
    meeting_server,
    open_page,
    wait_for_media,
    wait_for_participants,
)
from tests.servers import ARTIFACTS, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


@pytest.fixture
def guild(transactional_db):
    poterie = factories.trade()
    nadia = factories.nadia(pottery_=poterie)
    amina = factories.amina(pottery_=poterie, tlemcen_=factories.wilaya())
    yacine = factories.yacine(pottery_=poterie)
    room = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    return {"room": room.pk, "nadia": nadia, "amina": amina, "yacine": yacine}


def shoot(page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"tables-{name}.png"), full_page=True)


def join(page) -> int:
    page.wait_for_selector("#join:not([disabled])")
    page.click("#join")
    page.wait_for_selector("#meeting[data-phase='in']")
    return int(page.evaluate("() => window.hirfaMeeting.meeting()"))


def test_a_host_splits_the_meeting_into_tables_visits_one_and_brings_everyone_back(
    guild, meeting_server, meeting_browser  # noqa: F811
):
    ARTIFACTS.mkdir(exist_ok=True)
    nadia, amina, yacine = guild["nadia"], guild["amina"], guild["yacine"]
    path = f"/rooms/{guild['room']}/meeting/"
    n = open_page(meeting_browser, meeting_server, session_cookie(nadia), path, language="fr", viewport=PHONE)
    main = join(n)
    a = open_page(meeting_browser, meeting_server, session_cookie(amina), path, language="ar", viewport=PHONE)
    y = open_page(meeting_browser, meeting_server, session_cookie(yacine), path, language="fr", viewport=PHONE)
    assert join(a) == main and join(y) == main
    wait_for_participants(n, [nadia.pk, amina.pk, yacine.pk])
    a.evaluate("() => { window.socketBefore = window.hirfaHub.ws; }")

    # Nadia seats everyone but himself at one table, with a ten-minute timer.
    n.click("#ctl-people")
    n.wait_for_selector("#host-controls:not([hidden])")
    n.select_option("#tables-split", "random")
    n.fill("#tables-count", "1")
    n.fill("#tables-minutes", "10")
    n.click("#tables-form button[type='submit']")
    n.wait_for_selector("#tables-host:not([hidden]) li[data-table='1']")
    table = MeetingTable.objects.get()
    for page in (a, y):
        page.wait_for_function("(main) => window.hirfaMeeting.meeting() !== main && window.hirfaMeeting.phase() === 'in'", arg=main)
        page.wait_for_selector("#tables-bar:not([hidden])")
    table_meeting = int(a.evaluate("() => window.hirfaMeeting.meeting()"))
    assert table_meeting != main and a.evaluate("() => window.hirfaMeeting.tables().tables[0].room") == table.room_id
    wait_for_participants(a, [amina.pk, yacine.pk])
    wait_for_media(a, f"{yacine.pk}:camera", "framesDecoded")
    wait_for_participants(y, [amina.pk, yacine.pk])
    # At the table each hears the other: the voices flow both ways, and keep flowing.
    for page, other in ((a, yacine), (y, amina)):
        packets = wait_for_media(page, f"{other.pk}:mic", "packetsReceived")
        wait_for_media(page, f"{other.pk}:mic", "packetsReceived", above=packets)
    assert a.evaluate("() => window.hirfaHub.ws === window.socketBefore"), "moving to a table reconnected"
    shoot(n, "fr-host")

    # A message to every table, shown at once.
    n.fill("#tables-text", "Encore cinq minutes")
    n.click("#tables-broadcast button[type='submit']")
    a.wait_for_selector(".toast:has-text('Encore cinq minutes')")
    shoot(a, "ar-table")

    # Nadia visits the table: he is in its meeting and hears it; then he brings everyone back.
    n.click("#tables-list li[data-table='1'] button")
    n.wait_for_function("(id) => window.hirfaMeeting.meeting() === id && window.hirfaMeeting.phase() === 'in'", arg=table_meeting)
    wait_for_participants(n, [nadia.pk, amina.pk, yacine.pk])
    wait_for_media(n, f"{amina.pk}:camera", "framesDecoded")
    wait_for_media(n, f"{yacine.pk}:camera", "framesDecoded")

    n.wait_for_selector("#tables-back:not([hidden])")
    shoot(n, "fr-visit")
    if n.locator("#panel").is_hidden():
        n.click("#ctl-people")
    n.click("#tables-close")
    for page in (n, a, y):
        page.wait_for_function("(main) => window.hirfaMeeting.meeting() === main && window.hirfaMeeting.phase() === 'in'", arg=main)
    wait_for_participants(a, [nadia.pk, amina.pk, yacine.pk])
    assert a.evaluate("() => window.hirfaHub.ws === window.socketBefore"), "coming back reconnected"
    assert a.locator("#tables-bar").is_hidden()
    shoot(a, "ar-back")
