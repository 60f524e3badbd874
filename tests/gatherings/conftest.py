"""The gatherings' tests: the cast is the suite's (tests/factories.py). Karim, who
moderates Tlemcen, schedules in the Tlemcen room; Amina and Lina are its members; Yacine
(of Oran) and Omar are not; Leila is the admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rooms.models import Room, RoomKind


@pytest.fixture
def tlemcen_room(tlemcen, amina):
    return Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)


@pytest.fixture
def future():
    """A Friday 18:00 in Algiers some weeks ahead, as UTC (17:00 UTC)."""
    now = datetime.now(UTC)
    day = (now + timedelta(days=14)).date()
    while day.weekday() != 4:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 17, 0, tzinfo=UTC)


@pytest.fixture
def schedule(karim, tlemcen_room, future):
    """Karim schedules a gathering in the Tlemcen room (keyword overrides allowed)."""
    from gatherings import services

    def make(**kw):
        args = {
            "user": karim,
            "room_id": tlemcen_room.pk,
            "title": "Atelier poterie",
            "start": future,
            "duration": timedelta(hours=2),
        }
        args.update(kw)
        return services.gathering_schedule(**args)

    return make
