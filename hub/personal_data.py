"""A member's data across the apps: one registry of parts, so that the export and the
deletion of an account forget nothing.

Each app that holds rows about a member registers a `PersonalDataPart` in its
`AppConfig.ready()`: what it exports, which files go with the account, what must be
removed before the account row (whatever does not cascade), and, field by field, which
relations to the user it covers — exported, or left out with a reason. A test holds
every relation to the user model against the registry (`tests/hub/test_personal_data.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import Storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import User

EXPORT_FORMAT = "hirfa-export-1"

#: A file to delete once the account's deletion commits: its storage and name ("" or None: none).
StoredFile = tuple[Storage, str | None]


@dataclass(frozen=True)
class PersonalDataPart:
    """What one app holds about a member.

    `export` answers JSON-ready data per key of the export (`{"products": [...]}`);
    `files` the files that go with the account; `erase` removes, inside the deletion's
    transaction and before the account row, what would not cascade. `exported` names
    the relations to the user ("app_label.Model.field") whose rows the export carries;
    `left_out` the others, each with the reason it is not the member's data.
    """

    app: str
    export: Callable[[User], Mapping[str, Any]]
    exported: tuple[str, ...]
    left_out: Mapping[str, str] = field(default_factory=dict)
    files: Callable[[User], list[StoredFile]] | None = None
    erase: Callable[[User], None] | None = None


_parts: dict[str, PersonalDataPart] = {}


def part_register(part: PersonalDataPart) -> None:
    """Add (or replace, on a second `ready()`) the part of `part.app`."""
    _parts[part.app] = part


def parts() -> tuple[PersonalDataPart, ...]:
    return tuple(_parts.values())


def account_export(*, user: User) -> dict[str, Any]:
    """Everything the hub holds about `user` and that is his, as plain JSON types.

    The account itself, then each registered part's keys (in the order the apps are
    installed).
    """
    import json

    data: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "account": {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "phone": user.phone,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
            "preferred_language": user.preferred_language,
        },
    }
    for part in _parts.values():
        for key, value in part.export(user).items():
            if key in data:
                raise RuntimeError(f"export key {key!r} of {part.app} is already taken")
            data[key] = value
    # Round-trip through the encoder so callers get plain JSON types.
    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result


def account_delete(*, user: User, password: str | None = None) -> None:
    """Delete `user`'s account for good, with every part's rows and files.

    What each app keeps or removes is said where it registers its part (see
    docs/registry.md). Files are deleted once the deletion commits. When `password`
    is given it must be the account's (`forbidden` otherwise).
    """
    if password is not None and not user.check_password(password):
        raise HirfaError(ErrorCode.FORBIDDEN, _("The password is not right."), field="password")
    with transaction.atomic():
        files: list[StoredFile] = []
        for part in _parts.values():
            if part.files is not None:
                files += part.files(user)
        for part in _parts.values():
            if part.erase is not None:
                part.erase(user)
        User.objects.filter(pk=user.pk).delete()
        for storage, name in files:
            if name:
                transaction.on_commit(_deleter(storage, name))


def _deleter(storage: Storage, name: str) -> Callable[[], None]:
    return lambda: storage.delete(name)


# --- the hub's own part: profile and notifications ---------------------------------------


def _hub_export(user: User) -> dict[str, Any]:
    from hub.models import ArtisanProfile, DigestPreference, Notification, PushPreference

    push = PushPreference.objects.filter(user=user).first()
    digest = DigestPreference.objects.filter(user=user).first()
    profile = ArtisanProfile.objects.filter(user=user).select_related("wilaya").first()
    return {
        "profile": None
        if profile is None
        else {
            "display_name": profile.display_name,
            "wilaya": profile.wilaya.code if profile.wilaya else None,
            "trades": [t.slug for t in profile.trades.all()],
            "languages": profile.languages,
            "bio": profile.bio,
            "avatar": profile.avatar.name if profile.avatar else "",
        },
        "notifications": [
            {"kind": note.kind, "data": note.data, "created_at": note.created_at, "read_at": note.read_at,
             "emailed_at": note.emailed_at}
            for note in Notification.objects.filter(user=user).order_by("id")
        ],
        "push_preferences": None
        if push is None
        else {"muted_kinds": push.muted_kinds, "quiet_from": push.quiet_from, "quiet_to": push.quiet_to, "tz": push.tz},
        "email_digests": None
        if digest is None
        else {"after_hours": digest.after_hours, "last_sent_at": digest.last_sent_at},
    }


def _hub_files(user: User) -> list[StoredFile]:
    from hub.models import ArtisanProfile

    profile = ArtisanProfile.objects.filter(user=user).first()
    if profile is None or not profile.avatar:
        return []
    return [(profile.avatar.storage, profile.avatar.name)]


HUB_PART = PersonalDataPart(
    app="hub",
    export=_hub_export,
    files=_hub_files,
    exported=("hub.ArtisanProfile.user", "hub.Notification.user", "hub.PushPreference.user",
              "hub.DigestPreference.user"),
    left_out={
        "hub.ModeratorScope.user": "a role given by the admins; removed with the account",
        "hub.PushSubscription.user": "his browsers' push endpoints and keys: secrets, removed with the account",
    },
)
