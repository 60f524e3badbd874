"""rooms.services.message_send: a socket's text send written from the event loop's own
database connection (hub.db.loop_connection), with `message_post`'s answers and errors."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from hub import db
from hub.errors import ErrorCode, HirfaError
from rooms import services
from rooms.models import Membership, Message
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
def on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the loop's own connection is PostgreSQL's; SQLite sends through the pool")


@sync_to_async
def amina_in_the_guild() -> tuple[Any, Any]:
    room, amina = factories.guild_with("amina")
    return room, amina


@sync_to_async
def stored(room: Any, client_id: str) -> list[str]:
    return list(Message.objects.filter(room=room, client_id=client_id).values_list("text", flat=True))


async def test_a_plain_send_needs_no_thread_of_the_pool(on_postgresql, monkeypatch):
    room, amina = await amina_in_the_guild()
    await services.message_send(user=amina, room_id=room.pk, client_id="warm", text="Salam")
    pool = ThreadPoolExecutor(max_workers=1)
    release = threading.Event()
    monkeypatch.setattr(db, "_pool", pool)
    pool.submit(release.wait)  # every thread of the pool busy (a slow query, a lock)
    try:
        result = await asyncio.wait_for(
            services.message_send(user=amina, room_id=room.pk, client_id="c1", text="Une cruche neuve"), 10
        )
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert result.created and result.message.text == "Une cruche neuve"
    assert await stored(room, "c1") == ["Une cruche neuve"]


async def test_a_retried_send_answers_the_stored_message(on_postgresql):
    room, amina = await amina_in_the_guild()
    first = await services.message_send(user=amina, room_id=room.pk, client_id="c1", text="Salam")
    again = await services.message_send(user=amina, room_id=room.pk, client_id="c1", text="Salam")
    assert first.created and not again.created
    assert (again.message.id, again.message.rev) == (first.message.id, first.message.rev)
    assert await stored(room, "c1") == ["Salam"]


async def test_a_muted_member_is_refused_with_muted(on_postgresql):
    room, amina = await amina_in_the_guild()
    await sync_to_async(
        Membership.objects.filter(room=room, user=amina).update
    )(muted_until=timezone.now() + timedelta(minutes=5))
    with pytest.raises(HirfaError) as refused:
        await services.message_send(user=amina, room_id=room.pk, client_id="c1", text="Salam")
    assert refused.value.code == ErrorCode.MUTED
    assert await stored(room, "c1") == []


async def test_a_send_whose_connection_died_is_stored_once_and_the_next_one_reconnects(on_postgresql):
    room, amina = await amina_in_the_guild()
    await services.message_send(user=amina, room_id=room.pk, client_id="c1", text="avant")
    async with db.loop_connection() as conn:
        backend = conn.info.backend_pid

    @sync_to_async
    def terminate() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])

    await terminate()  # PostgreSQL restarted, a network cut: the idle connection is gone
    after = await services.message_send(user=amina, room_id=room.pk, client_id="c2", text="après")
    assert after.created and await stored(room, "c2") == ["après"]
    async with db.loop_connection() as conn:
        assert conn.info.backend_pid != backend
        assert not conn.broken
    following = await services.message_send(user=amina, room_id=room.pk, client_id="c3", text="encore")
    assert following.created and following.message.id == after.message.id + 1


async def test_idle_connections_are_closed_at_a_tests_end_even_with_their_loop_gone(on_postgresql):
    room, amina = await amina_in_the_guild()
    await services.message_send(user=amina, room_id=room.pk, client_id="c1", text="Salam")
    async with db.loop_connection() as conn:
        pass
    db.loop_connections_discard()
    assert conn.closed


async def test_a_member_read_without_his_profile_is_posted_under_his_name(on_postgresql):
    from hub.models import User

    room, amina = await amina_in_the_guild()
    bare = await sync_to_async(User.objects.get)(pk=amina.pk)  # no select_related("profile")
    result = await services.message_send(user=bare, room_id=room.pk, client_id="c1", text="Salam")
    assert result.created and result.message.author is not None
    assert result.message.author.name == "Amina Belkacem"
