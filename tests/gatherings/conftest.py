"""Personas for the gatherings' tests.

- amina: a potter of Tlemcen, member of the Tlemcen region room;
- karim: a moderator of the wilaya of Tlemcen (and a potter there);
- yacine: a potter of Oran, who does not follow the Tlemcen room;
- sofia: an artisan of the diaspora in Lyon, weaver of Tlemcen;
- nadia: the admin.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rooms.models import Room, RoomKind
from tests.factories import artisan, moderator_of, trade, wilaya


@pytest.fixture
def poterie(db):
    return trade()


@pytest.fixture
def tlemcen(db):
    return wilaya()


@pytest.fixture
def oran(db):
    return wilaya("Oran-test", "وهران")


@pytest.fixture
def amina(poterie, tlemcen):
    return artisan("amina", trades=[poterie], wilaya_=tlemcen)


@pytest.fixture
def karim(poterie, tlemcen):
    return moderator_of(artisan("karim", trades=[poterie], wilaya_=tlemcen), wilaya_=tlemcen)


@pytest.fixture
def yacine(poterie, oran):
    return artisan("yacine", trades=[poterie], wilaya_=oran)


@pytest.fixture
def sofia(tlemcen):
    weaving = trade("tissage-test", "Tissage", "النسيج")
    return artisan("sofia", trades=[weaving], wilaya_=tlemcen)


@pytest.fixture
def nadia(db):
    from hub.models import User

    return User.objects.create_superuser("nadia", "nadia@example.org", "a-long-test-passphrase")


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
