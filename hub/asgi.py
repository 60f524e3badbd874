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
from django.urls import path

from hub.admission import AdmissionGate
from hub.consumers import DISPLAY_NAME_KEY, HubConsumer
from hub.db import db_call


class SocketAuthMiddleware(channels_auth.AuthMiddleware):
    """Channels' AuthMiddleware (the session's member, its auth hash verified), with the
    session and user read on the hub's database pool. Channels reads them on one thread
    per process for every socket opening: a crowd reconnecting after a restart queued
    behind it, two queries at a time."""

    async def resolve_scope(self, scope: Any) -> None:
        scope["user"]._wrapped = await db_call(_member)(scope)


def _member(scope: Any) -> Any:
    """The session's member, and his display name in the same call on the pool (the welcome
    and presence need it): one hop less per socket opening."""
    user = channels_auth.get_user.func(scope)
    if user.is_authenticated:
        scope[DISPLAY_NAME_KEY] = user.display_name
    return user


websocket_urls = [path("ws/", HubConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        # The gate first: a socket refused in a crowd costs its handshake and nothing else.
        "websocket": AdmissionGate(
            AllowedHostsOriginValidator(
                CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(URLRouter(websocket_urls))))
            )
        ),
    }
)
