"""ASGI entry point: HTTP through Django, websockets at /ws/ through the hub consumer."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()

from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from django.contrib.auth.backends import ModelBackend

from channels import auth as channels_auth
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.urls import path

from hub.admission import AdmissionGate
from hub.collector import collector_set_for_crowds
from hub.consumers import DISPLAY_NAME_KEY, HubConsumer
from hub.db import CallsTogether
from hub.openings import OpeningOrder, opening_served


class SocketAuthMiddleware(channels_auth.AuthMiddleware):
    """Channels' AuthMiddleware (the session's member, its auth hash verified), with the
    session and user read on the hub's database pool, the openings waiting for it read
    together (`MemberReads`). Channels reads them on one thread per process for every
    socket opening: a crowd reconnecting after a restart queued behind it, two queries at
    a time."""

    async def resolve_scope(self, scope: Any) -> None:
        scope["user"]._wrapped = await MEMBER_READS.call(scope)
        opening_served(scope)  # read: the next opening waiting is read (hub.openings)


#: Openings whose sessions and members one call on the pool reads, and such calls at once.
READ_TOGETHER_MAX = 64
READ_CALLS_AT_ONCE = 2


def _members(scopes: list[Any]) -> list[Any]:
    """`_member` of each scope, the sessions of Django's database store read in one
    statement and their members (with profiles) in another; an opening's failure is its
    own (its exception in its place), not the others'."""
    users = _read_together([scope["session"] for scope in scopes])
    found: list[Any] = []
    for scope in scopes:
        try:
            found.append(_member(scope, users))
        except Exception as exc:
            found.append(exc)
    return found


#: The openings of an event loop waiting for their session and member: those that arrive while
#: `READ_CALLS_AT_ONCE` calls are on the pool go together in the next one (`_members`: two
#: statements for all of them). One call per opening, each two ORM queries built, compiled and
#: run on a thread of its own, made a crowd's reads a third of a hub's CPU, its threads taking
#: the GIL from the loop that accepts the crowd.
MEMBER_READS: CallsTogether[Any, Any] = CallsTogether(
    lambda scopes: _members(scopes),  # looked up at each call, as a test replaces it
    most=READ_TOGETHER_MAX,
    calls_at_once=READ_CALLS_AT_ONCE,
)


def _read_together(sessions: list[Any]) -> dict[Any, Any]:
    """Load each session of Django's database store in `sessions` as `SessionStore.load`
    does (unexpired, decoded by the store; a session not found loses its key), all in one
    statement; then the members these sessions name, with their profiles, in one more.
    The members by primary key (those of sessions whose backend reads them as Django's
    `ModelBackend` does: `session_member` reads the others itself)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
    from django.contrib.sessions.models import Session
    from django.core.exceptions import ValidationError
    from django.utils import timezone

    from hub.models import User

    # What `SessionBase._get_session` reads first, loading it when it is not there.
    stores: list[Any] = [
        s for s in sessions if type(s) is DbSessionStore and not hasattr(s, "_session_cache")
    ]
    keys = {s.session_key for s in stores if s.session_key}
    rows: dict[str, str] = {}
    if keys:
        found = Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
        rows = dict(found.values_list("session_key", "session_data"))
    for store in stores:
        data = rows.get(store.session_key) if store.session_key else None
        if data is None:
            store._session_key = None  # as SessionStore.load, when the row is not found
            store._session_cache = {}
        else:
            store._session_cache = store.decode(data)
    ids = set()
    for session in sessions:
        try:
            if _reads_with_profile(session[BACKEND_SESSION_KEY]):
                ids.add(User._meta.pk.to_python(session[SESSION_KEY]))
        except (KeyError, TypeError, ValueError, ValidationError):
            continue  # no member here, or one that `session_member` refuses on its own
    if not ids:
        return {}
    return {
        user.pk: user for user in User._default_manager.select_related("profile").filter(pk__in=ids)
    }


def _reads_with_profile(backend_path: str) -> bool:
    """Whether `session_member` reads the members of this backend itself, with their
    profiles (a configured backend only)."""
    from django.contrib.auth import load_backend

    return backend_path in settings.AUTHENTICATION_BACKENDS and _model_backend(
        load_backend(backend_path)
    )


def _model_backend(backend: Any) -> TypeGuard[ModelBackend]:
    """Whether ``backend`` reads its members as Django's `ModelBackend` does."""
    from django.contrib.auth.backends import ModelBackend

    return isinstance(backend, ModelBackend) and type(backend).get_user is ModelBackend.get_user


def _member(scope: Any, users: dict[Any, Any] | None = None) -> Any:
    """The session's member, and his display name in the same call on the pool (the welcome
    and presence need it): one hop less per socket opening. `users`: members already read
    (`_read_together`)."""
    user = session_member(scope["session"], users)
    if user.is_authenticated:
        scope[DISPLAY_NAME_KEY] = user.display_name
    return user


def session_member(session: Any, users: dict[Any, Any] | None = None) -> Any:
    """Channels' `get_user`: the session's member when its backend is configured, he may log
    in and the session's auth hash is his (else the session is flushed); else anonymous.
    A model backend's member is read with his profile (his display name): two statements
    per opening, the session and him, where Channels and the name made three. `users`: the
    members read already (a model backend's, by primary key; one missing does not exist)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
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
    if _model_backend(backend):
        if users is not None:
            user = users.get(user_id)
        else:
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
                    CookieMiddleware(
                        SessionMiddleware(SocketAuthMiddleware(URLRouter(websocket_urls)))
                    )
                )
            )
        ),
    }
)

# Last: everything made so far lives as long as the process (hub/collector.py).
collector_set_for_crowds()
