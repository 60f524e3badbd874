"""Scheduling, exceptions, visibility and RSVPs, without any transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatherings import selectors, services
from gatherings.models import Rsvp, RsvpStatus, Visibility
from hub.errors import ErrorCode, HirfaError
from hub.models import Notification
from rooms.models import Room, RoomKind
from rooms.services import group_create, member_ban
from tests import factories

WEEKLY4 = "FREQ=WEEKLY;COUNT=4"


def occs(gathering, **kw):
    return selectors.gathering_occurrences(gathering=gathering, **kw)


# --- scheduling and the permission matrix ---------------------------------------------


def test_moderator_of_the_wilaya_schedules_a_weekly_session(schedule, future):
    g = schedule(rrule="FREQ=WEEKLY;BYDAY=FR;COUNT=6")
    assert g.tz == "Africa/Algiers"
    assert g.start == future
    found = occs(g)
    assert len(found) == 6
    assert all(o.start.astimezone(ZoneInfo("Africa/Algiers")).hour == 18 for o in found)
    assert g.series_end == found[-1].end
    assert list(g.hosts.all()) == [g.created_by]


def test_naive_start_is_read_in_the_gatherings_zone(schedule, future):
    local = future.astimezone(ZoneInfo("Africa/Algiers")).replace(tzinfo=None)
    g = schedule(start=local)
    assert g.start == future


def test_permission_matrix_for_scheduling(amina, karim, yacine, leila, poterie, tlemcen, tlemcen_room, future):
    def attempt(user, room):
        return services.gathering_schedule(
            user=user, room_id=room.pk, title="T", start=future, duration=timedelta(hours=1)
        )

    guild = Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
    assert attempt(karim, tlemcen_room).pk
    assert attempt(leila, tlemcen_room).pk
    assert attempt(leila, guild).pk
    for user, room in [(amina, tlemcen_room), (yacine, tlemcen_room), (karim, guild)]:
        with pytest.raises(HirfaError) as err:
            attempt(user, room)
        assert err.value.code == ErrorCode.FORBIDDEN
    trade_mod = factories.nadia(pottery_=poterie)  # moderates the pottery trade, no wilaya
    assert attempt(trade_mod, guild).pk
    with pytest.raises(HirfaError) as err:
        attempt(trade_mod, tlemcen_room)
    assert err.value.code == ErrorCode.FORBIDDEN


def test_no_gatherings_in_private_groups(karim, amina, future):
    group = group_create(user=karim, title="Amis", member_ids=[amina.pk])
    with pytest.raises(HirfaError) as err:
        services.gathering_schedule(
            user=karim, room_id=group.pk, title="T", start=future, duration=timedelta(hours=1)
        )
    assert err.value.code == ErrorCode.INVALID


def test_edit_and_cancel_only_by_moderators(schedule, amina, yacine, leila, karim):
    g = schedule(visibility=Visibility.PUBLIC)
    for user in (amina, yacine):
        for action in (
            lambda u: services.gathering_update(user=u, gathering_id=g.pk, title="X"),
            lambda u: services.gathering_cancel(user=u, gathering_id=g.pk),
        ):
            with pytest.raises(HirfaError) as err:
                action(user)
            assert err.value.code == ErrorCode.FORBIDDEN
    assert services.gathering_update(user=karim, gathering_id=g.pk, title="Atelier").title == "Atelier"
    assert services.gathering_cancel(user=leila, gathering_id=g.pk).cancelled


def test_visibility_matrix(schedule, amina, yacine, lina, karim, leila, tlemcen_room):
    members_only = schedule(title="members")
    public = schedule(title="public", visibility=Visibility.PUBLIC)
    for user, expected in [
        (amina, {members_only.pk, public.pk}),  # follows the Tlemcen room
        (lina, {members_only.pk, public.pk}),  # lives in Tlemcen too
        (yacine, {public.pk}),  # Oran: only the public one
        (karim, {members_only.pk, public.pk}),
        (leila, {members_only.pk, public.pk}),
    ]:
        assert set(selectors.gatherings_visible(user=user).values_list("pk", flat=True)) == expected, user
    with pytest.raises(HirfaError) as err:
        selectors.gathering_get(user=yacine, gathering_id=members_only.pk)
    assert err.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(HirfaError) as missing:
        selectors.gathering_get(user=yacine, gathering_id=999999)
    assert missing.value.as_dict()["message"] == err.value.as_dict()["message"]
    assert selectors.gathering_get(user=None, gathering_id=public.pk) == public
    member_ban(moderator=karim, room_id=tlemcen_room.pk, target_id=amina.pk)
    assert not selectors.gatherings_visible(user=amina).exists()
    with pytest.raises(HirfaError):
        services.rsvp_set(user=amina, gathering_id=public.pk, status="going")


def test_rsvp_matrix(schedule, amina, yacine):
    members_only = schedule()
    public = schedule(visibility=Visibility.PUBLIC)
    assert services.rsvp_set(user=amina, gathering_id=members_only.pk, status="going").status == "going"
    assert services.rsvp_set(user=yacine, gathering_id=public.pk, status="maybe").status == "maybe"
    with pytest.raises(HirfaError) as err:
        services.rsvp_set(user=yacine, gathering_id=members_only.pk, status="going")
    assert err.value.code == ErrorCode.NOT_FOUND


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"start": datetime(2020, 1, 1, tzinfo=UTC)}, "start"),
        ({"duration": timedelta(0)}, "duration"),
        ({"duration": timedelta(days=30)}, "duration"),
        ({"duration": timedelta(hours=12, minutes=1)}, "duration"),
        ({"rrule": "FREQ=WEEKLY"}, "rrule"),
        ({"rrule": "FREQ=HOURLY;COUNT=5000"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=5000"}, "rrule"),
        ({"title": "  "}, "title"),
        ({"capacity": 0}, "capacity"),
        ({"visibility": "secret"}, "visibility"),
        ({"tz": "Nowhere/Else"}, "tz"),
        ({"language": "xx"}, "language"),
    ],
)
def test_bad_input_is_a_clear_error(schedule, changes, field):
    with pytest.raises(HirfaError) as err:
        schedule(**changes)
    assert err.value.code == ErrorCode.INVALID
    assert err.value.details["field"] == field
    assert err.value.message


def test_rsvp_to_a_cancelled_occurrence_or_gathering_is_refused(schedule, karim, amina):
    g = schedule(rrule=WEEKLY4)
    first, second = occs(g)[:2]
    services.occurrence_cancel(user=karim, gathering_id=g.pk, original_start=second.original_start)
    with pytest.raises(HirfaError) as err:
        services.rsvp_set(user=amina, gathering_id=g.pk, status="going", original_start=second.original_start)
    assert err.value.code == ErrorCode.CONFLICT
    with pytest.raises(HirfaError) as err:
        services.rsvp_set(user=amina, gathering_id=g.pk, status="yes", original_start=first.original_start)
    assert err.value.code == ErrorCode.INVALID
    with pytest.raises(HirfaError) as err:
        services.rsvp_set(
            user=amina, gathering_id=g.pk, status="going", original_start=first.original_start + timedelta(hours=1)
        )
    assert err.value.code == ErrorCode.NOT_FOUND
    services.gathering_cancel(user=karim, gathering_id=g.pk)
    with pytest.raises(HirfaError) as err:
        services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    assert err.value.code == ErrorCode.CONFLICT


# --- exceptions and time zones ---------------------------------------------------------------


def test_cancel_and_move_one_occurrence(schedule, karim, amina):
    g = schedule(rrule=WEEKLY4)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    o = occs(g)
    services.occurrence_cancel(user=karim, gathering_id=g.pk, original_start=o[1].original_start)
    new_start = o[2].original_start + timedelta(days=1, hours=1)
    moved = services.occurrence_move(
        user=karim, gathering_id=g.pk, original_start=o[2].original_start, new_start=new_start
    )
    assert moved.moved and moved.start == new_start and moved.key == o[2].key
    now = occs(g)
    assert [x.original_start for x in now] == [o[0].original_start, o[2].original_start, o[3].original_start]
    assert now[1].start == new_start
    assert [x.original_start for x in occs(g, include_cancelled=True) if x.cancelled] == [o[1].original_start]
    events = list(Notification.objects.filter(user=amina).values_list("data__event", flat=True))
    assert sorted(events) == ["moved", "occurrence_cancelled"]
    with pytest.raises(HirfaError) as err:
        services.occurrence_move(
            user=karim, gathering_id=g.pk, original_start=o[3].original_start, new_start=datetime(2020, 1, 1, tzinfo=UTC)
        )
    assert err.value.code == ErrorCode.INVALID


def test_this_and_following_splits_the_series(schedule, karim, amina):
    g = schedule(rrule="FREQ=WEEKLY;COUNT=6")
    o = occs(g)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    services.rsvp_set(user=amina, gathering_id=g.pk, status="not_going", original_start=o[4].original_start)
    services.occurrence_cancel(user=karim, gathering_id=g.pk, original_start=o[5].original_start)
    later = services.gathering_split(
        user=karim,
        gathering_id=g.pk,
        original_start=o[3].original_start,
        start=o[3].original_start + timedelta(hours=1),
        title="Atelier (nouvel horaire)",
    )
    g.refresh_from_db()
    assert [x.start for x in occs(g)] == [x.start for x in o[:3]]
    assert [x.start for x in occs(later, include_cancelled=True)] == [x.start + timedelta(hours=1) for x in o[3:]]
    assert [x.cancelled for x in occs(later, include_cancelled=True)] == [False, False, True]
    assert later.split_from == g and later.title.endswith("horaire)")
    assert selectors.my_rsvp(user=amina, gathering=later, original_start=None) == "going"
    assert selectors.my_rsvp(user=amina, gathering=later, original_start=o[4].original_start + timedelta(hours=1)) == "not_going"
    assert Notification.objects.filter(user=amina, data__event="changed", data__gathering=later.pk).exists()


@pytest.mark.parametrize(
    "viewer,summer,winter",
    [("Africa/Algiers", 18, 18), ("Europe/Paris", 19, 18), ("America/Montreal", 13, 12)],
)
def test_an_algiers_session_seen_from_other_zones(schedule, viewer, summer, winter):
    now = datetime.now(UTC)
    year = now.year + 1
    first = datetime(year, 1, 2, 17, 0, tzinfo=UTC)
    g = schedule(start=first, rrule=f"FREQ=MONTHLY;BYMONTHDAY=2;UNTIL={year}1231")
    months = {o.start.month: o.local_start(viewer).hour for o in occs(g)}
    assert months[7] == summer
    assert months[1] == winter and months[12] == winter
    assert {o.local_start("Africa/Algiers").hour for o in occs(g)} == {18}


def test_agenda_filters_and_mine(schedule, amina, yacine, karim, tlemcen, future):
    g = schedule(rrule=WEEKLY4, visibility=Visibility.PUBLIC)
    other = schedule(title="Autre")
    after, before = future - timedelta(days=1), future + timedelta(days=60)
    assert len(selectors.agenda(user=amina, after=after, before=before)) == 5
    assert len(selectors.agenda(user=yacine, after=after, before=before)) == 4
    assert len(selectors.agenda(user=amina, after=after, before=before, mine=True)) == 0
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    mine = selectors.agenda(user=amina, after=after, before=before, mine=True)
    assert {i.gathering.pk for i in mine} == {g.pk} and all(i.my_status == "going" for i in mine)
    assert len(selectors.agenda(user=karim, after=after, before=before, mine=True)) == 5  # hosts
    assert len(selectors.agenda(user=amina, after=after, before=before, wilaya_id=tlemcen.pk)) == 5
    assert len(selectors.agenda(user=amina, after=after, before=future + timedelta(days=1))) == 2
    assert other.pk


# --- seats and the waitlist ---------------------------------------------------------------------


def test_waitlist_promotes_the_next_member_and_tells_him(schedule, amina, lina, karim):
    g = schedule(capacity=1, rrule=WEEKLY4)
    first = occs(g)[0]
    assert services.rsvp_set(user=amina, gathering_id=g.pk, status="going", original_start=first.original_start).status == "going"
    r = services.rsvp_set(user=lina, gathering_id=g.pk, status="going", original_start=first.original_start)
    assert r.status == "waitlisted" and r.waitlist_position == 1
    r = services.rsvp_set(user=karim, gathering_id=g.pk, status="going", original_start=first.original_start)
    assert r.waitlist_position == 2
    assert not Notification.objects.filter(user=lina).exists()
    services.rsvp_set(user=amina, gathering_id=g.pk, status="not_going", original_start=first.original_start)
    assert selectors.my_rsvp(user=lina, gathering=g, original_start=first.original_start) == "going"
    assert selectors.my_rsvp(user=karim, gathering=g, original_start=first.original_start) == "waitlisted"
    note = Notification.objects.get(user=lina)
    assert note.kind == "gathering" and note.data["event"] == "promoted" and note.data["occurrence"] == first.key
    rows = selectors.occurrence_attendees(user=karim, gathering_id=g.pk, original_start=first.original_start)
    assert [(a.name, a.status) for a in rows] == [("Lina", "going"), ("Karim Benali", "waitlisted"), ("Amina Belkacem", "not_going")]
    with pytest.raises(HirfaError) as err:
        selectors.occurrence_attendees(user=amina, gathering_id=g.pk, original_start=first.original_start)
    assert err.value.code == ErrorCode.FORBIDDEN


def test_series_going_takes_free_seats_and_waits_for_full_ones(schedule, amina, lina):
    g = schedule(capacity=1, rrule=WEEKLY4)
    o = occs(g)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going", original_start=o[1].original_start)
    services.rsvp_set(user=lina, gathering_id=g.pk, status="going")
    assert [selectors.my_rsvp(user=lina, gathering=g, original_start=x.original_start) for x in o] == [
        "going", "waitlisted", "going", "going",
    ]
    services.rsvp_set(user=amina, gathering_id=g.pk, status="not_going")
    assert selectors.my_rsvp(user=lina, gathering=g, original_start=o[1].original_start) == "going"
    # Lina leaves the series: the seats she held are free again.
    services.rsvp_set(user=lina, gathering_id=g.pk, status="not_going")
    assert Rsvp.objects.filter(gathering=g, status=RsvpStatus.GOING).count() == 0


def test_raising_the_capacity_promotes(schedule, amina, lina, karim):
    g = schedule(capacity=1)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    assert services.rsvp_set(user=lina, gathering_id=g.pk, status="going", original_start=g.start).status == "waitlisted"
    services.gathering_update(user=karim, gathering_id=g.pk, capacity=2)
    assert selectors.my_rsvp(user=lina, gathering=g, original_start=g.start) == "going"


def test_changing_the_time_notifies_and_drops_stale_answers(schedule, amina, karim):
    g = schedule(rrule=WEEKLY4)
    o = occs(g)
    services.rsvp_set(user=amina, gathering_id=g.pk, status="going")
    services.rsvp_set(user=amina, gathering_id=g.pk, status="maybe", original_start=o[2].original_start)
    services.gathering_update(user=karim, gathering_id=g.pk, start=g.start + timedelta(hours=2))
    assert not Rsvp.objects.filter(gathering=g, occurrence_start__isnull=False).exists()
    assert Notification.objects.filter(user=amina, data__event="changed").count() == 1
    g.refresh_from_db()
    assert g.sequence == 1
