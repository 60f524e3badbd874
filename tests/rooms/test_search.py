"""Message search: who may find what, on SQLite (substring) and PostgreSQL (full text)."""

from __future__ import annotations

import pytest
from django.db import connection

from hub.errors import ErrorCode, HirfaError
from rooms import services
from rooms.models import Room, RoomKind
from rooms.search import excerpt_of, message_search
from tests import factories
from tests.conftest import skip_or_fail

pytestmark = pytest.mark.django_db



@pytest.fixture
def postgresql() -> None:
    """Full-text search runs on PostgreSQL only; under CI=true it must run."""
    if connection.vendor != "postgresql":
        skip_or_fail("full-text search runs on PostgreSQL only (set DATABASE_URL)")


@pytest.fixture
def world():
    """Amina and Yacine, potters; Omar of Oran, with a private group of his own."""
    pottery = factories.pottery()
    oran = factories.oran()
    amina = factories.amina(pottery_=pottery)
    yacine = factories.yacine(pottery_=pottery, oran_=oran)
    omar = factories.omar(oran_=oran)
    guild = Room.objects.get(kind=RoomKind.GUILD, trade=pottery)
    oran_room = Room.objects.get(kind=RoomKind.REGION, wilaya=oran)
    secret = services.group_create(user=omar, title="Cercle", member_ids=[yacine.pk])
    return {
        "amina": amina, "yacine": yacine, "omar": omar, "guild": guild, "oran": oran_room,
        "secret": secret,
    }


def say(user, room, text: str, client_id: str) -> int:
    return services.message_post(user=user, room_id=room.pk, client_id=client_id, text=text).message.id


def found(user, query: str, **kwargs) -> list[tuple[int, int]]:
    return [(h.room_id, h.id) for h in message_search(user=user, query=query, **kwargs)]


def test_finds_french_and_arabic_text(world):
    fr = say(world["yacine"], world["guild"], "Les poteries de Tlemcen sont au salon", "c1")
    ar = say(world["yacine"], world["guild"], "أبيع الفخار التقليدي من تلمسان", "c2")
    say(world["yacine"], world["guild"], "Rien à voir", "c3")
    guild = world["guild"].pk
    assert found(world["amina"], "poterie") == [(guild, fr)]
    assert found(world["amina"], "فخار") == [(guild, ar)]
    assert found(world["amina"], "TLEMCEN") == [(guild, fr)]
    hit = message_search(user=world["amina"], query="poterie")[0]
    assert hit.room_title == world["guild"].display_title()
    assert hit.author is not None and hit.author.name == "Yacine Haddad"
    assert "poteries" in hit.excerpt and hit.created_at is not None


def test_private_group_messages_never_reach_an_outsider(world):
    say(world["omar"], world["secret"], "Poterie secrète du cercle فخار", "c1")
    assert found(world["amina"], "poterie") == []
    assert found(world["amina"], "فخار") == []
    with pytest.raises(HirfaError) as refused:
        message_search(user=world["amina"], query="poterie", room_id=world["secret"].pk)
    assert refused.value.code == ErrorCode.NOT_FOUND
    # Its members find it.
    assert found(world["yacine"], "poterie") == [(world["secret"].pk, 1)]


def test_a_room_left_is_no_longer_searched_unless_public(world):
    say(world["omar"], world["secret"], "poterie du cercle", "c1")
    services.room_leave(user=world["yacine"], room_id=world["secret"].pk)
    assert found(world["yacine"], "poterie") == []
    # A public room is readable without following it.
    say(world["omar"], world["oran"], "poterie d'Oran", "c2")
    assert found(world["amina"], "poterie") == [(world["oran"].pk, 1)]


def test_banned_members_and_deleted_messages_are_excluded(world):
    say(world["yacine"], world["guild"], "poterie à vendre", "c1")
    gone = say(world["yacine"], world["guild"], "poterie effacée", "c2")
    services.message_delete(user=world["yacine"], room_id=world["guild"].pk, seq=gone)
    assert found(world["amina"], "poterie") == [(world["guild"].pk, 1)]
    services.member_ban(moderator=factories.leila(), room_id=world["guild"].pk, target_id=world["amina"].pk)
    assert found(world["amina"], "poterie") == []


def test_room_filter_and_limit(world):
    say(world["yacine"], world["guild"], "poterie un", "c1")
    say(world["yacine"], world["guild"], "poterie deux", "c2")
    say(world["omar"], world["oran"], "poterie trois", "c3")
    assert {r for r, _ in found(world["amina"], "poterie", room_id=world["guild"].pk)} == {
        world["guild"].pk
    }
    assert len(found(world["amina"], "poterie", limit=2)) == 2


def test_empty_and_too_long_queries_are_refused(world):
    with pytest.raises(HirfaError) as empty:
        message_search(user=world["amina"], query="   ")
    assert empty.value.code == ErrorCode.EMPTY
    with pytest.raises(HirfaError) as long:
        message_search(user=world["amina"], query="x" * 201)
    assert long.value.code == ErrorCode.TOO_LONG


def test_excerpt_is_a_window_around_the_match():
    text = "début " + "a" * 300 + " poterie " + "b" * 300
    piece = excerpt_of(text, ["poterie"])
    assert "poterie" in piece and piece.startswith("…") and piece.endswith("…")
    assert len(piece) <= 162
    assert excerpt_of("court", ["x"]) == "court"


def test_french_and_arabic_stemming_on_postgresql(postgresql, world):
    singular = say(world["yacine"], world["guild"], "Une belle poterie kabyle", "c1")
    arabic = say(world["yacine"], world["guild"], "فخار تلمسان جميل", "c2")
    guild = world["guild"].pk
    # "poteries" (plural) finds "poterie" only through the French stemmer.
    assert found(world["amina"], "poteries") == [(guild, singular)]
    # "الفخار" (with the article) finds "فخار" only through the Arabic stemmer.
    assert found(world["amina"], "الفخار") == [(guild, arabic)]
    # Words are matched whole, not as substrings.
    assert found(world["amina"], "pot") == []


def test_the_search_uses_the_gin_index_on_postgresql(postgresql, world):
    say(world["yacine"], world["guild"], "poterie", "c1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'rooms_message_text_fts'")
        assert cursor.fetchone() is not None
        from rooms.search import FTS_QUERY_SQL, FTS_VECTOR_SQL

        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT id FROM rooms_message WHERE {FTS_VECTOR_SQL} @@ {FTS_QUERY_SQL}",
            ["poterie", "poterie"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "rooms_message_text_fts" in plan, plan
