"""Personas for the web client's tests: Amina and Yacine, potters of Tlemcen,
and Karim, who moderates the pottery guild."""

from __future__ import annotations

import pytest

from rooms.models import Room, RoomKind
from tests import factories


@pytest.fixture
def poterie(db):
    return factories.trade()


@pytest.fixture
def tlemcen(db):
    return factories.wilaya()


@pytest.fixture
def amina(poterie, tlemcen):
    return factories.artisan("amina", trades=[poterie], wilaya_=tlemcen, display_name="Amina")


@pytest.fixture
def yacine(poterie, tlemcen):
    return factories.artisan("yacine", trades=[poterie], wilaya_=tlemcen, display_name="Yacine")


@pytest.fixture
def karim(poterie, tlemcen):
    user = factories.artisan("karim", trades=[poterie], wilaya_=tlemcen, display_name="Karim")
    return factories.moderator_of(user, trade_=poterie)


@pytest.fixture
def guild(poterie, amina):
    return Room.objects.get(kind=RoomKind.GUILD, trade=poterie)
