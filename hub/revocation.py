"""Rights end the moment they end, on every process.

When a member logs out, changes his password, is deactivated or deleted, the
sockets he has open must stop at once; when he is banned or removed from a room
or loses a moderator's role, they must narrow to what he may still do. Each of
those writes publishes, on commit, one :class:`Revocation` to the member's own
group ``user.<id>`` through :mod:`hub.realtime`, so that every hub process
holding one of his sockets hears it. The socket (``hub.consumers``) never passes
it on to the client: it closes with ``4003`` (``session``, ``account``) or
checks again every room it follows and the meeting it is in (``rights``).

The writes that Django makes itself (log-out, a password set anywhere, an
account deactivated or deleted, a moderator's scope granted or taken away in
the admin) are caught by signal receivers connected in ``HubConfig.ready``;
the room services publish their own.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hub import realtime

log = logging.getLogger(__name__)

#: A revocation's kind on the bus (`realtime.Event.kind`): the socket tells it from frames by this.
KIND = "revoke"


class Revocation(BaseModel):
    """What ended for the member: one session, the whole account, or some rights."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["revoke"] = "revoke"
    scope: Literal["session", "account", "rights"]
    #: For ``session``: the session key whose sockets close.
    session: str | None = None
    #: For ``rights``: the room whose access changed (None: every room and meeting).
    room: int | None = None


def decode(text: str) -> Revocation | None:
    """The revocation in the text of an event of kind `KIND`, or None when it is malformed."""
    try:
        return Revocation.model_validate_json(text)
    except ValueError:
        log.warning("a malformed revocation on the bus was ignored: %.200s", text)
        return None


def _publish(user_id: int, event: Revocation) -> None:
    text = event.model_dump_json(exclude_none=True)
    realtime.publish_on_commit(realtime.user_group(user_id), realtime.Event(KIND, text))


def sockets_close_session(*, user_id: int, session_key: str) -> None:
    """Close (4003) the sockets opened under one session of the member, once the transaction commits."""
    _publish(user_id, Revocation(scope="session", session=session_key))


def sockets_close_all(*, user_id: int) -> None:
    """Close (4003) every socket of the member, once the transaction commits."""
    _publish(user_id, Revocation(scope="account"))


def sockets_recheck(*, user_id: int, room_id: int | None = None) -> None:
    """Make the member's sockets check again what they follow (one room, or all) and
    the meeting they are in, once the transaction commits."""
    _publish(user_id, Revocation(scope="rights", room=room_id))


# --- Django's own writes -------------------------------------------------------------


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if user is not None and key:
        sockets_close_session(user_id=user.pk, session_key=key)


def _user_saving(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is None:
        return
    # set_password() keeps the raw password in _password until the save; it is set
    # on every path that changes a password (forms, admin, reset, changepassword).
    password_changed = getattr(instance, "_password", None) is not None
    deactivated = not instance.is_active and type(instance).objects.filter(pk=instance.pk, is_active=True).exists()
    if password_changed or deactivated:
        sockets_close_all(user_id=instance.pk)


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    sockets_close_all(user_id=instance.pk)


def _scope_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    sockets_recheck(user_id=instance.user_id)


def connect_signals() -> None:
    """Called once from HubConfig.ready()."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_delete, post_save, pre_save

    from hub.models import ModeratorScope

    user_model = get_user_model()
    user_logged_out.connect(_logged_out, dispatch_uid="hirfa-revoke-logout")
    pre_save.connect(_user_saving, sender=user_model, dispatch_uid="hirfa-revoke-user-save")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="hirfa-revoke-user-delete")
    post_save.connect(_scope_changed, sender=ModeratorScope, dispatch_uid="hirfa-revoke-scope-save")
    post_delete.connect(_scope_changed, sender=ModeratorScope, dispatch_uid="hirfa-revoke-scope-delete")
