"""Notification kinds, registered by the apps that send them.

The foundation holds no feature words: `Notification.kind` takes its choices from this
registry (a callable, so registering a kind needs no migration), and each app registers
the kinds it sends in its `AppConfig.ready()` — rooms `mention` and `report`,
gatherings `reminder` and `gathering`, the registry `exchange`. The stored values are
the same strings as before the registry, so no data moved.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

#: Said by the hub itself (account events).
SYSTEM = "system"

_kinds: dict[str, str | Promise] = {SYSTEM: _("system")}


def kind_register(value: str, label: str | Promise) -> str:
    """Declare a notification kind (at most 24 characters); answers `value`."""
    if not value or len(value) > 24:
        raise ValueError(f"a notification kind has 1 to 24 characters: {value!r}")
    _kinds[value] = label
    return value


def kind_choices() -> list[tuple[str, str | Promise]]:
    """The registered kinds, for `Notification.kind`'s choices."""
    return sorted(_kinds.items())


def kind_known(value: str) -> bool:
    return value in _kinds
