"""The websocket through the whole ASGI application: session auth and origin check."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore

from hub.asgi import application
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def session_cookie_for(username: str) -> bytes:
    user = factories.artisan(username)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()


async def test_a_signed_in_session_gets_a_welcome():
    cookie = await session_cookie_for("amina")
    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
    )
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"type": "hello", "v": 1})
    welcome = await comm.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome" and welcome["user"]["name"] == "Amina"
    await comm.disconnect()


async def test_no_session_is_closed_with_4003():
    comm = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}


async def test_a_foreign_origin_is_refused():
    cookie = await session_cookie_for("amina")
    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await comm.connect()
    assert not connected


async def test_the_session_is_read_on_the_database_pool_and_a_stale_one_refused(monkeypatch):
    """Channels reads every socket's session on one thread per process; the hub on its pool.
    The auth hash is still checked: a session from before a password change is no member."""
    import threading

    from hub import asgi

    threads: list[str] = []
    original = asgi.session_member

    def spy(session, *args):
        threads.append(threading.current_thread().name)
        return original(session, *args)

    monkeypatch.setattr(asgi, "session_member", spy)
    cookie = await session_cookie_for("amina")
    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
    )
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "hello", "v": 1})
    assert (await comm.receive_json_from(timeout=5))["type"] == "welcome"
    await comm.disconnect()
    assert threads and all(name.startswith("hirfa-db") for name in threads)

    @sync_to_async
    def change_password() -> None:
        from hub.models import User

        user = User.objects.get(username="amina")
        user.set_password("another long passphrase")
        user.save()

    await change_password()
    stale = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
    )
    assert (await stale.connect())[0]
    assert await stale.receive_output(timeout=5) == {"type": "websocket.close", "code": 4003}


async def test_opening_and_hello_take_one_trip_to_the_database_pool(monkeypatch):
    """The session, the member and his name (for the welcome and presence) are read in one
    call on the pool: every hop costs the crowd's event loop, and a reconnect storm is
    thousands of openings."""
    from hub import db

    hops: list[str] = []
    original = db._DbCall.thread_handler

    def counted(self, loop, *args, **kwargs):
        hops.append(getattr(self.func, "__name__", repr(self.func)))
        return original(self, loop, *args, **kwargs)

    monkeypatch.setattr(db._DbCall, "thread_handler", counted)
    cookie = await session_cookie_for("amina")
    comm = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie)]
    )
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "hello", "v": 2})
    welcome = await comm.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome" and welcome["user"]["name"] == "Amina"
    assert len(hops) == 1, hops
    await comm.disconnect()


def test_the_session_and_the_member_with_his_name_are_two_statements():
    """A socket's opening reads the session, then the member with his profile (his display
    name): two statements. Channels' get_user read the member, and his name a third."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hub.asgi import DISPLAY_NAME_KEY, _member

    cookie = session_cookie_for.func("amina").decode()
    key = cookie.partition("=")[2]
    scope = {"session": SessionStore(session_key=key)}
    with CaptureQueriesContext(connection) as queries:
        user = _member(scope)
    assert user.is_authenticated and user.username == "amina" and scope[DISPLAY_NAME_KEY] == "Amina"
    assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]
    # A session of a member who may no longer log in is nobody's.
    user.is_active = False
    user.save()
    assert not _member({"session": SessionStore(session_key=key)}).is_authenticated


async def test_openings_waiting_for_their_read_are_read_together(monkeypatch):
    """A crowd's openings read their sessions and members together: those that arrive while
    a read is on the pool go in the next call, two statements for all of them. One call and
    two statements per opening made each of a crowd's openings a hop to a thread of the pool
    and two ORM queries built and compiled, the threads taking the GIL from the event loop
    that accepts the crowd."""
    import threading

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hub import asgi

    calls: list[int] = []
    holding = threading.Event()
    release = threading.Event()
    original = asgi._members

    def held(scopes):
        calls.append(len(scopes))
        if len(calls) == 1:
            holding.set()
            release.wait(5)
        return original(scopes)

    monkeypatch.setattr(asgi, "_members", held)
    names = ["amina", "yacine", "karim", "lydia", "nadia", "samir"]
    cookies = [await session_cookie_for(name) for name in names]
    first = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookies[0])]
    )
    first_connected = asyncio.ensure_future(first.connect(timeout=10))
    for _ in range(500):
        if holding.is_set():
            break
        await asyncio.sleep(0.01)
    assert holding.is_set()
    crowd = [
        WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", c)])
        for c in cookies[1:]
    ]
    connecting = [asyncio.ensure_future(comm.connect(timeout=10)) for comm in crowd]
    for _ in range(50):
        await asyncio.sleep(0)  # the crowd's openings reach their read
    release.set()
    assert (await first_connected)[0]
    assert all(connected for connected, _ in await asyncio.gather(*connecting))
    assert calls == [1, 5], calls
    for comm, name in zip([first, *crowd], names, strict=True):
        await comm.send_json_to({"type": "hello", "v": 2})
        welcome = await comm.receive_json_from(timeout=5)
        assert welcome["type"] == "welcome" and welcome["user"]["name"] == name.capitalize()
        await comm.disconnect()

    # Read together, five sessions (one of them stale) and their members are two statements.
    @sync_to_async
    def read_together() -> None:
        sessions = [SessionStore(session_key=c.decode().partition("=")[2]) for c in cookies[1:]]
        stale = SessionStore(session_key="x" * 32)
        scopes = [{"session": s} for s in [*sessions, stale]]
        with CaptureQueriesContext(connection) as queries:
            users = original(scopes)
        assert [u.username for u in users[:5]] == names[1:]
        assert not users[5].is_authenticated
        assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]

    await read_together()


def test_an_opening_read_with_others_fails_alone():
    """A session naming no valid member fails its own opening (as when read alone), not the
    openings read with it."""
    from django.core.exceptions import ValidationError

    from hub.asgi import _members

    good = session_cookie_for.func("amina").decode().partition("=")[2]
    broken = SessionStore()
    broken[SESSION_KEY] = "not-a-number"
    broken[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    broken.save()
    found = _members([{"session": SessionStore(session_key=broken.session_key)},
                      {"session": SessionStore(session_key=good)}])
    assert isinstance(found[0], ValidationError)
    assert found[1].username == "amina"
