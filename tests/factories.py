"""Factories and named personas for the tests."""

from __future__ import annotations

import itertools
from typing import Any

from hub.models import ArtisanProfile, ModeratorScope, Trade, TradeDomain, User, Wilaya
from rooms.services import memberships_sync

_codes = itertools.count(900)


def domain() -> TradeDomain:
    return TradeDomain.objects.get_or_create(
        code="test-art", defaults={"name_fr": "Artisanat d'art", "name_ar": "الصناعة التقليدية الفنية"}
    )[0]


def trade(slug: str = "poterie-test", name_fr: str = "Poterie", name_ar: str = "الفخار") -> Trade:
    return Trade.objects.get_or_create(
        slug=slug, defaults={"domain": domain(), "name_fr": name_fr, "name_ar": name_ar, "name_en": name_fr}
    )[0]


def wilaya(name_fr: str = "Tlemcen-test", name_ar: str = "تلمسان") -> Wilaya:
    found = Wilaya.objects.filter(name_fr=name_fr).first()
    if found:
        return found
    return Wilaya.objects.create(code=next(_codes), name_fr=name_fr, name_ar=name_ar)


def artisan(
    username: str,
    *,
    trades: list[Trade] | None = None,
    wilaya_: Wilaya | None = None,
    display_name: str | None = None,
    password: str = "a-long-test-passphrase",
) -> User:
    user = User.objects.create_user(username=username, password=password, email=f"{username}@example.org")
    profile = ArtisanProfile.objects.create(
        user=user, display_name=display_name or username.capitalize(), wilaya=wilaya_
    )
    if trades:
        profile.trades.set(trades)
    memberships_sync(user=user)
    return user


def moderator_of(user: User, *, trade_: Trade | None = None, wilaya_: Wilaya | None = None) -> User:
    ModeratorScope.objects.create(user=user, trade=trade_, wilaya=wilaya_)
    return user


def guild_with(*names: str) -> tuple[Any, ...]:
    """The guild room of one trade and wilaya, with the named artisans in it: ``(room, *users)``."""
    from rooms.models import Room, RoomKind

    trade_, wilaya_ = trade(), wilaya()
    users = [artisan(name, trades=[trade_], wilaya_=wilaya_) for name in names]
    return (Room.objects.get(kind=RoomKind.GUILD, trade=trade_), *users)


def message(user: User, room: Any, text: str, client_id: str) -> Any:
    """`user` posts `text` in `room` (the service's result: `.message` is the frame)."""
    from rooms.services import message_post

    return message_post(user=user, room_id=room.pk, client_id=client_id, text=text)
