"""Who may host or join a meeting beyond the room's own rights: rules the upper apps
register in their `AppConfig.ready()` (gatherings: a gathering's hosts host its
meeting; an occurrence's meeting is for the room's members and those going).

Signaling never imports the apps above it; it asks these rules instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

#: A member's part in a meeting held as a masterclass (None: an ordinary meeting).
Stage = Literal["presenter", "listener"]

if TYPE_CHECKING:
    from hub.models import User
    from signaling.models import Meeting


class JoinRule(Protocol):
    def hosts(self, *, user: User, meeting: Meeting) -> bool:
        """Whether `user` hosts `meeting` by this rule (the room's rights aside)."""
        ...

    def check_join(self, *, user: User, meeting: Meeting) -> None:
        """Raise a `HirfaError` when this rule refuses `user` a place in `meeting`."""
        ...

    def stage(self, *, user: User, meeting: Meeting) -> Stage | None:
        """`user`'s part when this rule holds `meeting` as a masterclass; None otherwise."""
        ...


_rules: dict[str, JoinRule] = {}


def join_rule_register(name: str, rule: JoinRule) -> None:
    """Add (or replace, on a second `ready()`) the rule called `name`."""
    _rules[name] = rule


def join_rules() -> tuple[JoinRule, ...]:
    return tuple(_rules.values())


def hosts_by_rule(*, user: User, meeting: Meeting) -> bool:
    return any(rule.hosts(user=user, meeting=meeting) for rule in _rules.values())


def join_check(*, user: User, meeting: Meeting) -> None:
    """Raise the first refusal of a registered rule; nothing when all let `user` in."""
    for rule in _rules.values():
        rule.check_join(user=user, meeting=meeting)


def stage_by_rule(*, user: User, meeting: Meeting) -> Stage | None:
    """The first part a registered rule gives `user` in `meeting` (None: an ordinary meeting)."""
    for rule in _rules.values():
        stage = rule.stage(user=user, meeting=meeting)
        if stage is not None:
            return stage
    return None
