"""Live meetings of gatherings: the join window, who may join, hosts, attendance
summaries and their permissions. No transport: services, selectors and pages."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client

from gatherings import selectors, services
from gatherings.models import Gathering, OccurrenceMeeting, Rsvp
from hub.errors import ErrorCode, HirfaError
from signaling import selectors as signaling_selectors
from signaling.models import Attendance, Meeting

M = timedelta(minutes=1)


def first(gathering):
    return selectors.gathering_occurrences(gathering=gathering)[0]


def open_meeting(user, gathering, occ, now=None):
    return services.occurrence_meeting_open(
        user=user, gathering_id=gathering.pk, original_start=occ.original_start, now=now or occ.start
    )


@pytest.fixture
def public_session(schedule, yacine, lina):
    """A public session of the Tlemcen room hosted by karim and lina (a member, no
    moderator); yacine, of Oran, answered going."""
    from gatherings.models import Gathering as G

    g = schedule(visibility="public")
    g.hosts.add(lina)
    services.rsvp_set(user=yacine, gathering_id=g.pk, status="going")
    return G.objects.get(pk=g.pk)


# --- the join window ---------------------------------------------------------------------------


def test_join_window_opens_ten_minutes_before_and_closes_at_the_end(schedule, amina):
    g = schedule()
    occ = first(g)
    assert not selectors.occurrence_joinable(occurrence=occ, now=occ.start - 11 * M)
    assert selectors.occurrence_joinable(occurrence=occ, now=occ.start - 10 * M)
    assert selectors.occurrence_joinable(occurrence=occ, now=occ.end - M)
    assert not selectors.occurrence_joinable(occurrence=occ, now=occ.end)

    with pytest.raises(HirfaError) as early:
        open_meeting(amina, g, occ, now=occ.start - 11 * M)
    assert early.value.code == ErrorCode.INVALID and "opens" in early.value.details
    assert not Meeting.objects.exists()

    opened = open_meeting(amina, g, occ, now=occ.start - 10 * M)
    assert Meeting.objects.get(pk=opened.meeting_id).live

    with pytest.raises(HirfaError) as late:
        open_meeting(amina, g, occ, now=occ.end)
    assert late.value.code == ErrorCode.INVALID


def test_cancelled_occurrence_cannot_be_joined(schedule, karim, amina):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=2")
    occ = first(g)
    services.occurrence_cancel(user=karim, gathering_id=g.pk, original_start=occ.original_start)
    with pytest.raises(HirfaError) as err:
        open_meeting(amina, g, occ)
    assert err.value.code == ErrorCode.CONFLICT


# --- who may join ---------------------------------------------------------------------------------


def test_member_opens_the_room_meeting_even_without_moderating_it(schedule, amina, tlemcen_room):
    g = schedule()
    occ = first(g)
    opened = open_meeting(amina, g, occ)
    meeting = Meeting.objects.get(pk=opened.meeting_id)
    assert meeting.room_id == tlemcen_room.pk and opened.host is False
    link = OccurrenceMeeting.objects.get(meeting=meeting)
    assert (link.gathering_id, link.occurrence_start) == (g.pk, occ.original_start)
    # A second Join, by anyone allowed, finds the same meeting.
    assert open_meeting(amina, g, occ).meeting_id == meeting.pk
    assert Meeting.objects.count() == 1 and OccurrenceMeeting.objects.count() == 1


def test_going_non_member_joins_others_are_refused(public_session, yacine, omar, amina):
    occ = first(public_session)
    assert selectors.occurrence_may_join(user=amina, gathering=public_session, original_start=occ.original_start)
    assert selectors.occurrence_may_join(user=yacine, gathering=public_session, original_start=occ.original_start)
    assert not selectors.occurrence_may_join(user=omar, gathering=public_session, original_start=occ.original_start)

    opened = open_meeting(yacine, public_session, occ)
    with pytest.raises(HirfaError) as err:
        open_meeting(omar, public_session, occ)
    assert err.value.code == ErrorCode.FORBIDDEN

    meeting = Meeting.objects.get(pk=opened.meeting_id)
    selectors.meeting_join_check(user=amina, meeting=meeting)
    selectors.meeting_join_check(user=yacine, meeting=meeting)
    with pytest.raises(HirfaError) as hook:
        selectors.meeting_join_check(user=omar, meeting=meeting)
    assert hook.value.code == ErrorCode.FORBIDDEN


def test_maybe_or_not_going_outsider_is_refused(public_session, omar):
    occ = first(public_session)
    services.rsvp_set(user=omar, gathering_id=public_session.pk, status="maybe", original_start=occ.original_start)
    assert not selectors.occurrence_may_join(user=omar, gathering=public_session, original_start=occ.original_start)
    services.rsvp_set(user=omar, gathering_id=public_session.pk, status="going", original_start=occ.original_start)
    assert selectors.occurrence_may_join(user=omar, gathering=public_session, original_start=occ.original_start)


def test_members_only_gathering_is_not_found_for_outsiders(schedule, omar):
    g = schedule()
    with pytest.raises(HirfaError) as err:
        open_meeting(omar, g, first(g))
    assert err.value.code == ErrorCode.NOT_FOUND


def test_a_room_meeting_without_gathering_keeps_the_rooms_rule(tlemcen_room, karim, omar):
    from signaling.services import meeting_start

    out = meeting_start(user=karim, room_id=tlemcen_room.pk)
    meeting = Meeting.objects.get(pk=out.meeting)
    selectors.meeting_join_check(user=omar, meeting=meeting)  # nothing raised
    assert not selectors.meeting_hosted_by_gathering(user=karim, meeting=meeting)


def test_room_meeting_already_live_is_taken_over_by_the_gathering(schedule, karim, amina, tlemcen_room):
    from signaling.services import meeting_start

    adhoc = meeting_start(user=karim, room_id=tlemcen_room.pk).meeting
    g = schedule()
    assert open_meeting(amina, g, first(g)).meeting_id == adhoc
    other = schedule(title="Autre séance")
    with pytest.raises(HirfaError) as err:
        open_meeting(amina, other, first(other))
    assert err.value.code == ErrorCode.CONFLICT


def test_a_meeting_left_behind_by_a_past_occurrence_does_not_block_the_next(schedule, amina, karim):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=3")
    one, two, three = selectors.gathering_occurrences(gathering=g)
    empty = open_meeting(amina, g, one).meeting_id  # nobody followed into it
    second = open_meeting(amina, g, two).meeting_id
    assert second != empty
    assert Meeting.objects.get(pk=empty).ended_at is not None
    # Someone still in last week's meeting: it stays, and the next one must wait.
    Attendance.objects.create(meeting_id=second, user=karim)
    with pytest.raises(HirfaError) as err:
        open_meeting(amina, g, three)
    assert err.value.code == ErrorCode.CONFLICT
    assert Meeting.objects.get(pk=second).live


# --- hosts ----------------------------------------------------------------------------------------


def test_gathering_hosts_are_the_meetings_hosts(public_session, lina, karim, amina, yacine):
    occ = first(public_session)
    meeting = Meeting.objects.get(pk=open_meeting(yacine, public_session, occ).meeting_id)
    assert selectors.meeting_hosted_by_gathering(user=lina, meeting=meeting)
    assert selectors.meeting_hosted_by_gathering(user=karim, meeting=meeting)
    assert not selectors.meeting_hosted_by_gathering(user=amina, meeting=meeting)
    assert not selectors.meeting_hosted_by_gathering(user=yacine, meeting=meeting)
    assert open_meeting(lina, public_session, occ).host is True


def test_signaling_applies_the_gatherings_rules(public_session, lina, yacine, omar):
    """Through signaling's own join ticket: going outsider in, other outsider out, host hosts."""
    occ = first(public_session)
    meeting_id = open_meeting(yacine, public_session, occ).meeting_id
    assert signaling_selectors.meeting_join_ticket(user=yacine, meeting_id=meeting_id).host is False
    assert signaling_selectors.meeting_join_ticket(user=lina, meeting_id=meeting_id).host is True
    with pytest.raises(HirfaError):
        signaling_selectors.meeting_join_ticket(user=omar, meeting_id=meeting_id)


# --- attendance -----------------------------------------------------------------------------------


def _attendance_fixture(public_session, amina, yacine, lina, omar):
    """Amina stays 18:00–18:45 and comes back 19:00–19:30, yacine (going) from 17:40 (clipped
    to 17:50) to 18:20, lina (host) all along; omar answered going and never came."""
    occ = first(public_session)
    Rsvp.objects.create(gathering=public_session, user=omar, status="going", occurrence_start=occ.original_start)
    Rsvp.objects.create(gathering=public_session, user=amina, status="going")
    s = occ.start
    meeting = Meeting.objects.create(room=public_session.room, started_at=s - 20 * M, ended_at=s + 100 * M)
    OccurrenceMeeting.objects.create(gathering=public_session, occurrence_start=occ.original_start, meeting=meeting)
    Attendance.objects.create(meeting=meeting, user=amina, joined_at=s, left_at=s + 45 * M)
    Attendance.objects.create(meeting=meeting, user=amina, joined_at=s + 60 * M, left_at=s + 90 * M)
    Attendance.objects.create(meeting=meeting, user=yacine, joined_at=s - 20 * M, left_at=s + 20 * M)
    Attendance.objects.create(meeting=meeting, user=lina, joined_at=s - 5 * M, left_at=s + 100 * M)
    return occ


def test_attendance_summary_after_the_end(public_session, karim, amina, yacine, lina, omar):
    occ = _attendance_fixture(public_session, amina, yacine, lina, omar)
    summary = selectors.occurrence_attendance(
        user=karim, gathering_id=public_session.pk, original_start=occ.original_start, now=occ.end + 60 * M
    )
    assert summary.over
    by_name = {r.name: r for r in summary.attendees}
    assert [r.name for r in summary.attendees] == ["Yacine Haddad", "Lina", "Amina Belkacem"]
    assert by_name["Amina Belkacem"].duration == 75 * M and by_name["Amina Belkacem"].sessions == 2
    assert by_name["Amina Belkacem"].last_left == occ.start + 90 * M
    assert by_name["Yacine Haddad"].duration == 30 * M  # from the opening of Join, 10 minutes before
    assert by_name["Yacine Haddad"].first_joined == occ.start - 10 * M
    assert by_name["Lina"].duration == 105 * M and by_name["Lina"].answer is None
    assert by_name["Yacine Haddad"].answer == "going"
    assert [n.name for n in summary.no_shows] == ["Omar"]
    assert summary.going == 3
    assert summary.duration == 110 * M and summary.meetings == 1
    assert summary.started_at == occ.start - 10 * M and summary.ended_at == occ.start + 100 * M


def test_attendance_while_live_counts_until_now(public_session, karim, amina, yacine):
    occ = first(public_session)
    s = occ.start
    meeting = Meeting.objects.create(room=public_session.room, started_at=s)
    OccurrenceMeeting.objects.create(gathering=public_session, occurrence_start=occ.original_start, meeting=meeting)
    Attendance.objects.create(meeting=meeting, user=amina, joined_at=s + 5 * M)
    summary = selectors.occurrence_attendance(
        user=karim, gathering_id=public_session.pk, original_start=occ.original_start, now=s + 30 * M
    )
    assert not summary.over and summary.ended_at is None
    (row,) = summary.attendees
    assert row.last_left is None and row.duration == 25 * M
    assert [n.name for n in summary.no_shows] == ["Yacine Haddad"]


def test_attendance_of_another_occurrence_is_not_counted(schedule, karim, amina):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=2")
    one, two = selectors.gathering_occurrences(gathering=g)
    meeting = Meeting.objects.create(room=g.room, started_at=two.start, ended_at=two.end)
    OccurrenceMeeting.objects.create(gathering=g, occurrence_start=two.original_start, meeting=meeting)
    Attendance.objects.create(meeting=meeting, user=amina, joined_at=two.start, left_at=two.end)
    summary = selectors.occurrence_attendance(
        user=karim, gathering_id=g.pk, original_start=one.original_start, now=two.end
    )
    assert summary.attendees == [] and summary.duration == timedelta(0)


def test_only_hosts_and_moderators_see_the_summary(public_session, karim, lina, amina, yacine, omar, leila):
    occ = first(public_session)
    for user in (karim, lina, leila):
        selectors.occurrence_attendance(user=user, gathering_id=public_session.pk, original_start=occ.original_start)
    for user in (amina, yacine, omar):
        with pytest.raises(HirfaError) as err:
            selectors.occurrence_attendance(
                user=user, gathering_id=public_session.pk, original_start=occ.original_start
            )
        assert err.value.code == ErrorCode.FORBIDDEN


# --- pages ------------------------------------------------------------------------------------------


def client_for(user, lang="fr") -> Client:
    c = Client(HTTP_ACCEPT_LANGUAGE=lang)
    c.force_login(user)
    c.cookies["django_language"] = lang
    return c


def _starting_soon(gathering: Gathering, minutes: int = 5) -> Gathering:
    """Moves the (already validated) gathering so that it starts in `minutes` (or, below
    zero, started that long ago), bypassing the check that refuses a start in the past."""
    from django.utils import timezone

    start = timezone.now().replace(microsecond=0) + minutes * M
    Gathering.objects.filter(pk=gathering.pk).update(start=start, series_end=start + gathering.duration)
    return Gathering.objects.get(pk=gathering.pk)


@pytest.mark.parametrize("lang", ["fr", "ar", "en"])
def test_join_button_on_the_page_and_in_the_agenda_leads_to_the_meeting(schedule, amina, lang):
    g = _starting_soon(schedule())
    occ = first(g)
    c = client_for(amina, lang)
    page = c.get(f"/gatherings/{g.pk}/").content.decode()
    join = f"/gatherings/{g.pk}/occurrences/{occ.key}/join"
    assert join in page and 'data-action="join"' in page
    assert join in c.get("/gatherings/").content.decode()
    r = c.post(join)
    assert r.status_code == 302
    from gatherings.views import meeting_url

    assert Meeting.objects.count() == 1
    assert r["Location"] == meeting_url(room_id=g.room_id)


def test_no_join_button_too_early_or_for_outsiders(schedule, public_session, amina, omar):
    early = _starting_soon(schedule(title="Plus tard"), minutes=11)
    page = client_for(amina).get(f"/gatherings/{early.pk}/").content.decode()
    assert 'data-action="join"' not in page
    r = client_for(amina).post(f"/gatherings/{early.pk}/occurrences/{first(early).key}/join")
    assert r.status_code == 302 and r["Location"] == f"/gatherings/{early.pk}/"
    assert not Meeting.objects.exists()

    soon = _starting_soon(public_session)
    page = client_for(omar).get(f"/gatherings/{soon.pk}/").content.decode()
    assert 'data-action="join"' not in page
    client_for(omar).post(f"/gatherings/{soon.pk}/occurrences/{first(soon).key}/join")
    assert not Meeting.objects.exists()


def test_attendance_page_and_csv_for_hosts_only(public_session, karim, amina, yacine, lina, omar):
    public_session = _starting_soon(public_session, minutes=-3 * 24 * 60)  # last week's session
    occ = _attendance_fixture(public_session, amina, yacine, lina, omar)
    base = f"/gatherings/{public_session.pk}/occurrences/{occ.key}/attendance"
    page = client_for(lina, "ar").get(base)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-figure="no-shows">1<' in html and "Omar" in html
    r = client_for(karim, "en").get(base + ".csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0] == "name"
    by_name = {row[0]: row for row in rows[1:] if row}
    assert by_name["Amina Belkacem"][5] == "75" and by_name["Amina Belkacem"][6] == "2"
    assert by_name["Omar"][2] == "no" and by_name["Omar"][5] == "0"
    assert rows[-1] == ["meeting duration (minutes)", "110"]
    for user in (amina, yacine):
        assert client_for(user).get(base).status_code == 403
        assert client_for(user).get(base + ".csv").status_code == 403


def test_past_occurrences_link_to_attendance_for_hosts(schedule, karim, amina):
    g = schedule()
    occ = first(g)
    past = occ.start - timedelta(days=30)
    Gathering.objects.filter(pk=g.pk).update(start=past, series_end=past + g.duration)
    g = Gathering.objects.get(pk=g.pk)
    past_key = selectors.gathering_occurrences(gathering=g, include_cancelled=True)[0].key
    assert f"occurrences/{past_key}/attendance" in client_for(karim).get(f"/gatherings/{g.pk}/").content.decode()
    assert "attendance" not in client_for(amina).get(f"/gatherings/{g.pk}/").content.decode()


# --- REST -------------------------------------------------------------------------------------------


def test_api_join_and_attendance(schedule, public_session, karim, amina, yacine, lina, omar):
    soon = _starting_soon(schedule())
    key = first(soon).key
    r = client_for(amina).post(f"/api/gatherings/{soon.pk}/occurrences/{key}/join")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["meeting_id"] == Meeting.objects.get().pk and body["host"] is False and body["url"]
    early = schedule(title="Plus tard")
    r = client_for(amina).post(f"/api/gatherings/{early.pk}/occurrences/{first(early).key}/join")
    assert r.status_code == 400 and r.json()["code"] == "invalid"

    past = _starting_soon(public_session, minutes=-3 * 24 * 60)
    occ = _attendance_fixture(past, amina, yacine, lina, omar)
    url = f"/api/gatherings/{past.pk}/occurrences/{occ.key}/attendance"
    r = client_for(lina).get(url)
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["minutes"] == 110 and [n["name"] for n in data["no_shows"]] == ["Omar"]
    assert {a["name"]: a["minutes"] for a in data["attendees"]} == {"Yacine Haddad": 30, "Lina": 105, "Amina Belkacem": 75}
    assert client_for(amina).get(url).status_code == 403
    assert client_for(omar).get(url).status_code == 403
