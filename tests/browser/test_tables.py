"""Workshop tables in headless Chromium, on phones in French and Arabic.

Nadia (who moderates the pottery guild, in French) hosts the guild's meeting; Amina (in
Arabic) and Yacine are in it. Nadia splits it into tables: both move to their table's
meeting on the same socket, with its own media, and hear and see each other there (the
first to reach the table used to be heard by nobody: his receiver on the SFU had started
without RED). She sends a message to every table, visits one (its pictures reach her),
and brings everyone back. Then she seats them by hand with the form; Rachid, late, is
told the meeting is split and she seats him at a table; visiting a table she ends the
meeting, and everyone at every table is out. Screenshots under test-artifacts/tables-*.png.
"""

from __future__ import annotations

import pytest

from rooms.models import Room, RoomKind
from signaling.models import Meeting, MeetingTable
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
    rachid = factories.artisan("rachid", trades=[poterie], display_name="رشيد")
    room = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    return {"room": room.pk, "nadia": nadia, "amina": amina, "yacine": yacine, "rachid": rachid}


def shoot(page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"tables-{name}.png"), full_page=True)


def join(page) -> int:
    page.wait_for_selector("#join:not([disabled])")
    page.click("#join")
    page.wait_for_selector("#meeting[data-phase='in']")
    return int(page.evaluate("() => window.hirfaMeeting.meeting()"))


def test_a_host_splits_the_meeting_into_tables_visits_one_brings_everyone_back_seats_by_hand_and_ends_it(
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

    # By hand: Nadia seats Amina at table 1 and Yacine at table 2 with the form.
    wait_for_participants(n, [nadia.pk, amina.pk, yacine.pk])
    if n.locator("#panel").is_hidden():
        n.click("#ctl-people")
    n.select_option("#tables-split", "hand")
    n.fill("#tables-count", "2")
    n.dispatch_event("#tables-count", "change")
    for who, number in ((amina, "1"), (yacine, "2")):
        n.select_option(f"#tables-hand-list li[data-user='{who.pk}'] select", number)
    shoot(n, "fr-hand")
    n.click("#tables-form button[type='submit']")
    n.wait_for_selector("#tables-host:not([hidden]) li[data-table='2']")
    for page in (a, y):
        page.wait_for_function("(main) => window.hirfaMeeting.meeting() !== main && window.hirfaMeeting.phase() === 'in'", arg=main)
    first, second = (int(p.evaluate("() => window.hirfaMeeting.meeting()")) for p in (a, y))
    assert first != second
    assert {t["number"]: [m["id"] for m in t["members"]] for t in a.evaluate("() => window.hirfaMeeting.tables().tables")} == {
        1: [amina.pk], 2: [yacine.pk]
    }

    # Rachid comes late: he is told the meeting is split, and Nadia seats him at Amina's table.
    r = open_page(meeting_browser, meeting_server, session_cookie(guild["rachid"]), path, language="ar", viewport=PHONE)
    r.check("#audio-only")
    assert join(r) == main
    r.wait_for_selector("#tables-bar:not([hidden])")
    assert r.evaluate("() => window.hirfaMeeting.tables()?.open") is True
    shoot(r, "ar-late")
    seat = f"#tables-unseated li[data-user='{guild['rachid'].pk}']"
    n.wait_for_selector(seat)
    shoot(n, "fr-seat")
    # On a phone the host reads the late comer's whole name, not a name cut by an ellipsis.
    assert n.eval_on_selector(f"{seat} .person", "e => e.scrollWidth <= e.clientWidth"), "the name is cut"
    n.select_option(f"{seat} select", "1")
    n.click(f"{seat} button")
    r.wait_for_function("(id) => window.hirfaMeeting.meeting() === id && window.hirfaMeeting.phase() === 'in'", arg=first)
    wait_for_participants(a, [amina.pk, guild["rachid"].pk])

    # Nadia visits table 2 and ends the meeting for everyone: everyone, at every table, is out.
    n.click("#tables-list li[data-table='2'] button")
    n.wait_for_function("(id) => window.hirfaMeeting.meeting() === id && window.hirfaMeeting.phase() === 'in'", arg=second)
    if n.locator("#panel").is_hidden():
        n.click("#ctl-people")
    n.click("#end-all")
    for page in (n, a, y, r):
        page.wait_for_selector("#meeting[data-phase='ended']")
    assert not MeetingTable.objects.filter(closed_at__isnull=True).exists()
    assert not Meeting.objects.filter(ended_at__isnull=True).exists()
    shoot(a, "ar-ended")
    for page in (n, a, y, r):
        assert page.errors == [], page.errors
