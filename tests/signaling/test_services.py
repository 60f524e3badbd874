"""Who may start, join and host a meeting; attendance; TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.errors import ErrorCode, HirfaError
from rooms import services as room_services
from rooms.models import Room, RoomKind
from signaling import selectors, services
from signaling.models import Attendance, Meeting
from signaling.turn import ice_servers
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def tlemcen_guild():
    trade = factories.trade()
    wilaya = factories.wilaya()
    amina = factories.amina(pottery_=trade, tlemcen_=wilaya)
    yacine = factories.yacine(pottery_=trade)
    moderator = factories.nadia(pottery_=trade)
    outsider = factories.walid()
    room = Room.objects.get(kind=RoomKind.GUILD, trade=trade)
    return room, amina, yacine, moderator, outsider


def codes(fn, **kwargs) -> str:
    with pytest.raises(HirfaError) as info:
        fn(**kwargs)
    return info.value.code.value


def test_only_a_moderator_starts_a_meeting_in_a_guild(tlemcen_guild):
    room, amina, _karim, moderator, _ = tlemcen_guild
    assert codes(services.meeting_start, user=amina, room_id=room.pk) == ErrorCode.FORBIDDEN.value
    out = services.meeting_start(user=moderator, room_id=room.pk)
    assert out.live and out.meeting and out.participants == []
    again = services.meeting_start(user=moderator, room_id=room.pk, video_codec="h264")
    assert again.meeting == out.meeting and again.video_codec == "vp8"


def test_any_member_starts_a_meeting_of_a_group_and_hosts_it(tlemcen_guild):
    _room, amina, yacine, _moderator, outsider = tlemcen_guild
    group = room_services.group_create(user=amina, title="Atelier", member_ids=[yacine.pk])
    out = services.meeting_start(user=yacine, room_id=group.pk)
    assert selectors.meeting_join_ticket(user=yacine, meeting_id=out.meeting).host  # he started it
    assert selectors.meeting_join_ticket(user=amina, meeting_id=out.meeting).host  # the owner moderates
    assert codes(services.meeting_start, user=outsider, room_id=group.pk) == "not_found"
    assert codes(selectors.meeting_join_ticket, user=outsider, meeting_id=out.meeting) == "not_found"


def test_join_ticket_lock_lobby_and_hosts(tlemcen_guild):
    room, amina, _karim, moderator, _ = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk, lobby=True).meeting
    ticket = selectors.meeting_join_ticket(user=amina, room_id=room.pk)
    assert (ticket.meeting_id, ticket.host, ticket.must_wait) == (meeting_id, False, True)
    assert selectors.meeting_join_ticket(user=moderator, meeting_id=meeting_id).must_wait is False
    assert codes(services.meeting_settings_set, user=amina, meeting_id=meeting_id, locked=True) == "forbidden"
    services.meeting_settings_set(user=moderator, meeting_id=meeting_id, locked=True)
    assert codes(selectors.meeting_join_ticket, user=amina, meeting_id=meeting_id) == "meeting_locked"
    assert selectors.meeting_join_ticket(user=moderator, meeting_id=meeting_id).host
    assert codes(selectors.meeting_join_ticket, user=amina, meeting_id=999999) == "not_found"


def test_attendance_and_the_meeting_ends_when_the_last_one_leaves(tlemcen_guild):
    room, amina, _karim, moderator, _ = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk).meeting
    services.meeting_attend(user=moderator, meeting_id=meeting_id)
    services.meeting_attend(user=amina, meeting_id=meeting_id)
    services.meeting_attend(user=amina, meeting_id=meeting_id)  # idempotent
    frame = selectors.room_meeting(user=amina, room_id=room.pk)
    assert sorted(p.name for p in frame.participants) == ["Amina Belkacem", "Nadia"]
    assert services.meeting_depart(user=amina, meeting_id=meeting_id) is False
    assert services.meeting_depart(user=moderator, meeting_id=meeting_id) is True
    assert Meeting.objects.get(pk=meeting_id).ended_at is not None
    assert Attendance.objects.filter(meeting_id=meeting_id).count() == 2
    assert not Attendance.objects.filter(meeting_id=meeting_id, left_at__isnull=True).exists()
    assert selectors.room_meeting(user=amina, room_id=room.pk).live is False
    assert codes(selectors.meeting_join_ticket, user=amina, meeting_id=meeting_id) == "not_found"


def test_worker_assignment_is_first_writer_wins(tlemcen_guild):
    room, _amina, _karim, moderator, _outsider = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk).meeting
    assert services.meeting_worker_assign(meeting_id=meeting_id, expected="", worker="w1") == "w1"
    assert services.meeting_worker_assign(meeting_id=meeting_id, expected="", worker="w2") == "w1"
    assert services.meeting_worker_assign(meeting_id=meeting_id, expected="w1", worker="w2") == "w2"


def test_ice_servers_carry_coturn_time_limited_credentials(settings):
    settings.HIRFA_STUN_URLS = ["stun:stun.example.org:3478"]
    settings.HIRFA_TURN_URLS = []
    servers, ttl = ice_servers(user_id=3, meeting_id=5)
    assert [s.urls for s in servers] == [["stun:stun.example.org:3478"]] and ttl is None
    settings.HIRFA_TURN_URLS = ["turn:turn.example.org:3478?transport=udp"]
    settings.HIRFA_TURN_SECRET = "s3cret"
    settings.HIRFA_TURN_TTL_SECONDS = 600
    servers, ttl = ice_servers(user_id=3, meeting_id=5, now=1_000_000)
    turn = servers[-1]
    # Bound to the meeting: its id is in the signed username.
    assert ttl == 600 and turn.username == "1000600:3:m5"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1000600:3:m5", hashlib.sha1).digest()).decode()
    assert turn.credential == expected


@pytest.mark.parametrize("configured, lives", [(86400, 3600), (7200, 3600), (3600, 3600), (900, 900)])
def test_turn_credentials_live_an_hour_at_most(settings, configured, lives):
    settings.HIRFA_TURN_URLS = ["turn:turn.example.org:3478?transport=udp"]
    settings.HIRFA_TURN_SECRET = "s3cret"
    settings.HIRFA_TURN_TTL_SECONDS = configured
    servers, ttl = ice_servers(user_id=3, meeting_id=5, now=1_000_000)
    assert ttl == lives and servers[-1].username == f"{1_000_000 + lives}:3:m5"
    from signaling.turn import renew_after

    assert 0 < renew_after(ttl) < ttl


def test_the_default_lifetime_is_an_hour():
    from django.conf import settings

    assert settings.HIRFA_TURN_TTL_SECONDS <= 3600


def test_a_crashed_process_rows_are_swept_and_its_meeting_ends(tlemcen_guild):
    room, amina, yacine, moderator, _ = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk).meeting
    services.meeting_attend(user=amina, meeting_id=meeting_id, process="crashed")
    services.meeting_attend(user=yacine, meeting_id=meeting_id, process="alive")
    long_ago = timezone.now() - timedelta(minutes=5)
    Attendance.objects.filter(process="crashed").update(seen_at=long_ago)
    assert services.attendance_heartbeat(process="alive") == 1

    assert services.meetings_sweep(stale_after=90, unattended_after=600) == []
    crashed = Attendance.objects.get(user=amina)
    assert crashed.left_at == long_ago  # closed when it was last seen
    assert Attendance.objects.get(user=yacine).left_at is None
    assert Meeting.objects.get(pk=meeting_id).live

    # the other process dies too: the meeting ends with its last row
    Attendance.objects.filter(process="alive").update(seen_at=long_ago)
    assert services.meetings_sweep(stale_after=90, unattended_after=600) == [meeting_id]
    assert not Meeting.objects.get(pk=meeting_id).live
    assert selectors.room_meeting(user=amina, room_id=room.pk).live is False


def test_a_meeting_nobody_joins_ends_after_the_unattended_delay(tlemcen_guild):
    room, amina, _karim, moderator, _ = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk).meeting
    assert services.meetings_sweep(stale_after=90, unattended_after=600) == []
    later = timezone.now() + timedelta(seconds=601)
    assert services.meetings_sweep(stale_after=90, unattended_after=600, now=later) == [meeting_id]
    # a meeting with someone in it whose process is alive is never ended
    again = services.meeting_start(user=moderator, room_id=room.pk).meeting
    assert again != meeting_id
    services.meeting_attend(user=amina, meeting_id=again, process="p")
    Meeting.objects.filter(pk=again).update(started_at=timezone.now() - timedelta(hours=2))
    assert services.meetings_sweep(stale_after=90, unattended_after=600) == []


def test_a_stopping_process_closes_its_rows(tlemcen_guild):
    room, amina, yacine, moderator, _ = tlemcen_guild
    meeting_id = services.meeting_start(user=moderator, room_id=room.pk).meeting
    services.meeting_attend(user=amina, meeting_id=meeting_id, process="p1")
    services.meeting_attend(user=yacine, meeting_id=meeting_id, process="p2")
    assert services.attendance_close_process(process="p1") == []
    assert Attendance.objects.filter(left_at__isnull=True).get().user == yacine
    assert services.attendance_close_process(process="p2") == [meeting_id]
    assert services.attendance_close_process(process="p2") == []
