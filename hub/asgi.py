"""ASGI entry point: HTTP through Django, websockets at /ws/ through the hub consumer."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from typing import Any

from channels import auth as channels_auth
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.urls import path

from hub.admission import AdmissionGate
from hub.collector import collector_set_for_crowds
from hub.consumers import DISPLAY_NAME_KEY, HubConsumer
from hub.db import db_call
from hub.openings import OpeningOrder, opening_served


class SocketAuthMiddleware(channels_auth.AuthMiddleware):
    """Channels' AuthMiddleware (the session's member, its auth hash verified), with the
    session and user read on the hub's database pool. Channels reads them on one thread
    per process for every socket opening: a crowd reconnecting after a restart queued
    behind it, two queries at a time."""

    async def resolve_scope(self, scope: Any) -> None:
        scope["user"]._wrapped = await db_call(_member)(scope)
        opening_served(scope)  # read: the next opening waiting is read (hub.openings)


def _member(scope: Any) -> Any:
    """The session's member, and his display name in the same call on the pool (the welcome
    and presence need it): one hop less per socket opening."""
    user = session_member(scope["session"])
    if user.is_authenticated:
        scope[DISPLAY_NAME_KEY] = user.display_name
    return user


def session_member(session: Any) -> Any:
    """Channels' `get_user`: the session's member when its backend is configured, he may log
    in and the session's auth hash is his (else the session is flushed); else anonymous.
    A model backend's member is read with his profile (his display name): two statements
    per opening, the session and him, where Channels and the name made three."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import AnonymousUser
    from django.utils.crypto import constant_time_compare

    from hub.models import User

    try:
        user_id = User._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    backend = load_backend(backend_path)
    user: Any
    if isinstance(backend, ModelBackend) and type(backend).get_user is ModelBackend.get_user:
        try:
            user = User._default_manager.select_related("profile").get(pk=user_id)
        except User.DoesNotExist:
            user = None
        if user is not None and not backend.user_can_authenticate(user):
            user = None
    else:
        user = backend.get_user(user_id)
    if user is not None and hasattr(user, "get_session_auth_hash"):
        session_hash = session.get(HASH_SESSION_KEY)
        if not (session_hash and constant_time_compare(session_hash, user.get_session_auth_hash())):
            session.flush()
            user = None
    return user or AnonymousUser()


websocket_urls = [path("ws/", HubConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        # The gate first: a socket refused in a crowd costs its handshake and nothing else.
        # Then the order of openings: the newest first, none whose client has given up.
        "websocket": AdmissionGate(
            OpeningOrder(
                AllowedHostsOriginValidator(
                    CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(URLRouter(websocket_urls))))
                )
            )
        ),
    }
)

# Last: everything made so far lives as long as the process (hub/collector.py).
collector_set_for_crowds()
