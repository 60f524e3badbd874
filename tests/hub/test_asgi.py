"""The websocket through the whole ASGI application: session auth and origin check."""

from __future__ import annotations

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
