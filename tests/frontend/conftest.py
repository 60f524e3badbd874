"""The web client's tests: the cast is the suite's (tests/factories.py) — mostly Amina
and Yacine, potters, and Nadia, who moderates the pottery guild."""

from __future__ import annotations

import pytest

from rooms.models import Room, RoomKind


@pytest.fixture
def guild(poterie, amina):
    return Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
