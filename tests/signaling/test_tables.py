"""Workshop tables: a host splits a live meeting into tables and brings everyone back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hub.errors import ErrorCode, HirfaError
from hub.models import User
from rooms.models import Message, Room, RoomKind
from signaling import selectors, services, tables
from signaling.models import Meeting, MeetingTable
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, object]]:
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(tables.realtime, "publish_now", lambda group, frame: sent.append((group, frame)))
    return sent


@pytest.fixture
def region_meeting():
    """The Tlemcen region's meeting: Karim (its moderator, a potter) hosts; two potters, a weaver
    and Sofiane (no trade) are in it; Rabah is in the region but not in the meeting."""
    tlemcen = factories.wilaya()
    pottery = factories.trade()
    weaving = factories.trade("tissage-test", "Tissage", "النسيج")
    karim = factories.karim(pottery_=pottery, tlemcen_=tlemcen)
    amina = factories.amina(pottery_=pottery, tlemcen_=tlemcen)
    yasmine = factories.artisan("yasmine", trades=[pottery], wilaya_=tlemcen)
    lina = factories.lina(weaving_=weaving, tlemcen_=tlemcen)
    sofiane = factories.artisan("sofiane", wilaya_=tlemcen)
    factories.artisan("rabah", trades=[weaving], wilaya_=tlemcen)
    room = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    meeting_id = services.meeting_start(user=karim, room_id=room.pk).meeting
    assert meeting_id is not None
    for user in (karim, amina, yasmine, lina, sofiane):
        services.meeting_attend(user=user, meeting_id=meeting_id)
    return meeting_id, {u.username: u for u in (karim, amina, yasmine, lina, sofiane)}


def code_of(fn, **kwargs) -> str:
    with pytest.raises(HirfaError) as info:
        fn(**kwargs)
    return info.value.code.value


def seated(frame) -> dict[int, set[int]]:
    return {table.number: {a.id for a in table.members} for table in frame.tables}


def test_a_host_deals_everyone_else_over_tables_each_a_meeting_and_room_of_its_own(
    region_meeting, published, django_capture_on_commit_callbacks
):
    meeting_id, people = region_meeting
    karim, amina = people["karim"], people["amina"]
    with django_capture_on_commit_callbacks(execute=True):
        frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="random", count=2, minutes=15)
    assert frame.open and len(frame.tables) == 2 and frame.ends_at is not None
    guests = {people[n].pk for n in ("amina", "yasmine", "lina", "sofiane")}
    at_tables = [uid for members in seated(frame).values() for uid in members]
    assert sorted(at_tables) == sorted(guests), "everyone but the host, once"
    assert sorted(len(m) for m in seated(frame).values()) == [2, 2]
    table_meetings = {t.meeting for t in frame.tables}
    assert len(table_meetings) == 2 and meeting_id not in table_meetings
    assert Meeting.objects.filter(pk__in=table_meetings, ended_at__isnull=True).count() == 2
    # Told in the meeting and in each table's meeting.
    assert sorted(group for group, _ in published) == sorted(f"meeting.{m}" for m in (meeting_id, *table_meetings))

    mine = next(t for t in frame.tables if amina.pk in {a.id for a in t.members})
    other = next(t for t in frame.tables if t is not mine)
    assert selectors.meeting_join_ticket(user=amina, meeting_id=mine.meeting).room_id == mine.room
    assert code_of(selectors.meeting_join_ticket, user=amina, meeting_id=other.meeting) == ErrorCode.NOT_FOUND.value
    # The host visits any table, as its host.
    assert selectors.meeting_join_ticket(user=karim, meeting_id=other.meeting).host

    assert code_of(tables.tables_open, user=karim, meeting_id=meeting_id) == ErrorCode.CONFLICT.value
    assert code_of(tables.tables_close, user=amina, meeting_id=meeting_id) == ErrorCode.FORBIDDEN.value


def test_by_trade_one_table_per_trade_and_the_rest_together(region_meeting, published):
    meeting_id, people = region_meeting
    frame = tables.tables_open(user=people["karim"], meeting_id=meeting_id, split="trade", count=5)
    by_label = {t.label: {a.id for a in t.members} for t in frame.tables}
    pottery, weaving = factories.trade(), factories.trade("tissage-test")
    assert by_label[pottery.localized_name()] == {people["amina"].pk, people["yasmine"].pk}
    assert by_label[weaving.localized_name()] == {people["lina"].pk}
    assert len(by_label) == 3  # Sofiane, with no trade, sits with the others
    tables.tables_close(user=people["karim"], meeting_id=meeting_id)

    frame = tables.tables_open(user=people["karim"], meeting_id=meeting_id, split="trade", count=1)
    assert seated(frame) == {1: {people[n].pk for n in ("amina", "yasmine", "lina", "sofiane")}}


def test_seated_by_hand_only_whom_the_host_names(region_meeting, published):
    meeting_id, people = region_meeting
    karim, amina, lina = people["karim"], people["amina"], people["lina"]
    rabah = User.objects.get(username="rabah")  # in the region, not in the meeting
    assert code_of(
        tables.tables_open, user=karim, meeting_id=meeting_id, split="hand", seats=[[amina.pk, rabah.pk]]
    ) == ErrorCode.INVALID.value
    assert code_of(
        tables.tables_open, user=karim, meeting_id=meeting_id, split="hand", seats=[[amina.pk], [amina.pk]]
    ) == ErrorCode.INVALID.value
    frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="hand", seats=[[amina.pk], [lina.pk]])
    assert seated(frame) == {1: {amina.pk}, 2: {lina.pk}}


def test_the_meeting_and_open_tables_stay_live_while_people_move_and_end_after(region_meeting, published):
    meeting_id, people = region_meeting
    karim = people["karim"]
    frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="random", count=2)
    for user in people.values():
        assert not services.meeting_depart(user=user, meeting_id=meeting_id), "a split meeting waits for them"
    first, second = frame.tables
    member = people_by_id(people)[next(iter(first.members)).id]
    services.meeting_attend(user=member, meeting_id=first.meeting)
    assert not services.meeting_depart(user=member, meeting_id=first.meeting), "an open table waits too"
    later = timezone.now() + timedelta(hours=2)
    assert services.meetings_sweep(stale_after=60, unattended_after=60, now=later) == []

    services.meeting_attend(user=member, meeting_id=first.meeting)
    closed = tables.tables_close(user=karim, meeting_id=meeting_id)
    assert not closed.open and closed.tables == []
    assert Meeting.objects.get(pk=second.meeting).ended_at is not None, "nobody was at it: it ends"
    assert Meeting.objects.get(pk=first.meeting).ended_at is None, "it ends when its last one leaves"
    assert services.meeting_depart(user=member, meeting_id=first.meeting)
    services.meeting_attend(user=karim, meeting_id=meeting_id)
    assert services.meeting_depart(user=karim, meeting_id=meeting_id), "back to usual: the last one out ends it"


def people_by_id(people):
    return {u.pk: u for u in people.values()}


def test_a_broadcast_reaches_every_table_chat_and_the_timer_brings_everyone_back(region_meeting, published):
    meeting_id, people = region_meeting
    karim = people["karim"]
    assert code_of(tables.tables_broadcast, user=karim, meeting_id=meeting_id, text="x") == ErrorCode.INVALID.value
    frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="random", count=2, minutes=10)
    sent = tables.tables_broadcast(user=karim, meeting_id=meeting_id, text="Five minutes left")
    assert sent.notice == "Five minutes left"
    for table in frame.tables:
        assert Message.objects.filter(room_id=table.room, author=karim, text="Five minutes left").count() == 1
    assert code_of(tables.tables_broadcast, user=people["amina"], meeting_id=meeting_id, text="x") == (
        ErrorCode.FORBIDDEN.value
    )

    assert tables.tables_close_lapsed(now=timezone.now() + timedelta(minutes=9)) == 0
    assert tables.tables_close_lapsed(now=timezone.now() + timedelta(minutes=11)) == 1
    assert not MeetingTable.objects.filter(closed_at__isnull=True).exists()
    assert not tables.tables_of(user=people["amina"], meeting_id=meeting_id).open


def test_ending_the_meeting_closes_its_tables(region_meeting, published, django_capture_on_commit_callbacks):
    meeting_id, people = region_meeting
    tables.tables_open(user=people["karim"], meeting_id=meeting_id, split="random", count=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.meeting_end(user=people["karim"], meeting_id=meeting_id)
    assert not MeetingTable.objects.filter(closed_at__isnull=True).exists()
    assert any(getattr(frame, "ended", False) for _group, frame in published), "everyone at a table is told it is over"


def test_a_host_visiting_a_table_ends_the_whole_meeting_not_only_the_table(
    region_meeting, published, django_capture_on_commit_callbacks
):
    meeting_id, people = region_meeting
    karim = people["karim"]
    frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="random", count=2)
    first, second = frame.tables
    services.meeting_attend(user=karim, meeting_id=first.meeting)  # visiting
    seated_there = next(iter(first.members))
    services.meeting_attend(user=User.objects.get(pk=seated_there.id), meeting_id=first.meeting)

    with django_capture_on_commit_callbacks(execute=True):
        services.meeting_end(user=karim, meeting_id=first.meeting)
    for meeting in (meeting_id, first.meeting, second.meeting):
        assert Meeting.objects.get(pk=meeting).ended_at is not None
    assert not MeetingTable.objects.filter(closed_at__isnull=True).exists()
    assert not services.Attendance.objects.filter(left_at__isnull=True).exists()
    told = [frame for _group, frame in published if getattr(frame, "ended", False)]
    assert told and not told[-1].open


def test_a_host_seats_a_late_comer_and_moves_someone_to_another_table(region_meeting, published):
    meeting_id, people = region_meeting
    karim, amina, lina = people["karim"], people["amina"], people["lina"]
    late = factories.artisan("rachid", wilaya_=Room.objects.get(pk=Meeting.objects.get(pk=meeting_id).room_id).wilaya)
    frame = tables.tables_open(user=karim, meeting_id=meeting_id, split="hand", seats=[[amina.pk], [lina.pk]])
    # The late comer joins the meeting: he is told where everyone sits, and seated by hand.
    services.meeting_attend(user=late, meeting_id=meeting_id)
    told = tables.tables_of(user=late, meeting_id=meeting_id)
    assert told.open and seated(told) == {1: {amina.pk}, 2: {lina.pk}}
    assert code_of(tables.tables_seat, user=amina, meeting_id=meeting_id, member_id=late.pk, number=1) == (
        ErrorCode.FORBIDDEN.value
    )
    assert code_of(tables.tables_seat, user=karim, meeting_id=meeting_id, member_id=late.pk, number=3) == (
        ErrorCode.INVALID.value
    )
    assert code_of(tables.tables_seat, user=karim, meeting_id=meeting_id, member_id=karim.pk, number=1) == (
        ErrorCode.INVALID.value
    )
    frame = tables.tables_seat(user=karim, meeting_id=meeting_id, member_id=late.pk, number=2)
    assert seated(frame) == {1: {amina.pk}, 2: {lina.pk, late.pk}}
    # Someone at a table is moved to another (he was in that table's meeting).
    services.meeting_attend(user=amina, meeting_id=frame.tables[0].meeting)
    frame = tables.tables_seat(user=karim, meeting_id=meeting_id, member_id=amina.pk, number=2)
    assert seated(frame) == {1: set(), 2: {amina.pk, lina.pk, late.pk}}
    assert selectors.meeting_join_ticket(user=late, meeting_id=frame.tables[1].meeting).room_id == frame.tables[1].room
