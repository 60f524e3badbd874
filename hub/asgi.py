"""ASGI entry point: HTTP through Django, websockets at /ws/ through the hub consumer."""

from __future__ import annotations

import functools
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

    data = _session_data(session)
    try:
        user_id = User._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    backend = load_backend(backend_path)
    user: Any
    if isinstance(backend, ModelBackend) and type(backend).get_user is ModelBackend.get_user:
        user = _member_with_name(user_id)
        if user is not None and not backend.user_can_authenticate(user):
            user = None
    else:
        user = backend.get_user(user_id)
    if user is not None and hasattr(user, "get_session_auth_hash"):
        session_hash = data.get(HASH_SESSION_KEY)
        if not (session_hash and constant_time_compare(session_hash, user.get_session_auth_hash())):
            session.flush()
            user = None
    return user or AnonymousUser()


# The opening's two reads as plain statements, not ORM querysets: every socket of a crowd
# built and compiled both queries again (issue 12; sampled with py-spy on a hub taking
# 2,000 members).
_SESSION_SQL = "SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s"
#: The member's columns read at an opening (the rest are deferred, as `.only()` would).
_MEMBER_FIELDS = frozenset({"id", "password", "username", "first_name", "last_name", "email", "is_active",
                            "is_staff", "is_superuser", "preferred_language", "phone"})


@functools.cache
def _member_fields() -> list[Any]:
    """`_MEMBER_FIELDS` in the model's order of fields, the order `Model.from_db` reads."""
    from hub.models import User

    return [f for f in User._meta.concrete_fields if f.name in _MEMBER_FIELDS]


def _session_data(session: Any) -> Any:
    """The session's data: one plain statement for Django's database store (an expired or
    missing session reads as empty, as its `load` does), the store's own reading otherwise."""
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
    from django.contrib.sessions.models import Session
    from django.db import connections, router
    from django.utils import timezone

    if type(session) is not DatabaseStore or not session.session_key:
        return session
    alias = router.db_for_read(Session)
    connection = connections[alias]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_SESSION_SQL.format(table=connection.ops.quote_name(Session._meta.db_table)),
                       [session.session_key, now])
        row = cursor.fetchone()
    return session.decode(row[0]) if row else {}


@functools.cache
def _member_sql() -> str:
    from django.db import connection

    from hub.models import ArtisanProfile, User

    def column(model: Any, name: str) -> str:
        return str(connection.ops.quote_name(model._meta.get_field(name).column))

    user_columns = ", ".join(f"u.{column(User, f.name)}" for f in _member_fields())
    quote = connection.ops.quote_name
    return (
        f"SELECT {user_columns}, p.{column(ArtisanProfile, 'id')}, p.{column(ArtisanProfile, 'display_name')}"
        f" FROM {quote(User._meta.db_table)} u LEFT JOIN {quote(ArtisanProfile._meta.db_table)} p"
        f" ON p.{column(ArtisanProfile, 'user')} = u.{column(User, 'id')} WHERE u.{column(User, 'id')} = %s"
    )


def _member_with_name(user_id: Any) -> Any:
    """The member `user_id` with his profile's display name (other fields deferred), or None;
    one plain statement on the account's database."""
    from django.db import connections, router

    from hub.models import ArtisanProfile, User

    alias = router.db_for_read(User)
    with connections[alias].cursor() as cursor:
        cursor.execute(_member_sql(), [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    fields = _member_fields()
    n = len(fields)
    user = User.from_db(alias, [f.attname for f in fields], list(row[:n]))
    profile_id, display_name = row[n:]
    if profile_id is not None:
        # As select_related("profile") would leave it: `user.profile` reads nothing more.
        user.profile = ArtisanProfile.from_db(alias, ["id", "user_id", "display_name"],
                                              [profile_id, user.pk, display_name])
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
