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
    """The pottery guild's room with the named artisans in it: ``(room, *users)``. A name of
    the cast is that person (amina, yacine, karim and nadia are potters); any other name is
    a potter of Tlemcen of that name."""
    from rooms.models import Room, RoomKind

    trade_, wilaya_ = pottery(), tlemcen()
    potters = {
        "amina": lambda: amina(pottery_=trade_, tlemcen_=wilaya_),
        "yacine": lambda: yacine(pottery_=trade_),
        "karim": lambda: karim(pottery_=trade_, tlemcen_=wilaya_),
        "nadia": lambda: nadia(pottery_=trade_),
    }
    users = []
    for name in names:
        if name in CAST and name not in potters:
            raise ValueError(f"{name} is no potter: take another name for a member of the guild")
        users.append(potters[name]() if name in potters else artisan(name, trades=[trade_], wilaya_=wilaya_))
    return (Room.objects.get(kind=RoomKind.GUILD, trade=trade_), *users)


def message(user: User, room: Any, text: str, client_id: str) -> Any:
    """`user` posts `text` in `room` (the service's result: `.message` is the frame)."""
    from rooms.services import message_post

    return message_post(user=user, room_id=room.pk, client_id=client_id, text=text)


# The cast: one name is one person in every test folder. A test that needs someone else
# takes another name (or an unnamed `artisan(...)`), never a cast name with other traits.
# Places are the suite's own (`trade()`, `wilaya()`) unless the test passes the reference
# ones (the registry's tests do: Tlemcen 13, Oran 31, Alger 16).
#
#   amina  — Amina Belkacem, potter of Tlemcen, speaks Arabic and French: a member of her
#            guild and region
#   yacine — Yacine Haddad, potter of Oran, speaks French: Amina's guild, not her region
#   karim  — Karim Benali, potter of Tlemcen who moderates the wilaya of Tlemcen
#   nadia  — potter of no wilaya yet who moderates the pottery trade nationwide
#   omar   — moderates the wilaya of Oran (not Tlemcen); no trade of his own
#   sofia  — weaver of Alger, writes her name in Arabic: another trade, far from Tlemcen
#   lina   — weaver of Tlemcen living in Lyon: Amina's region, not her guild
#   walid  — signed up with no trade and no wilaya: in no room
#   leila  — the hub's administrator


CAST = ("amina", "yacine", "karim", "nadia", "omar", "sofia", "lina", "walid", "leila")


def pottery() -> Trade:
    return trade()


def weaving() -> Trade:
    return trade("tissage-test", "Tissage", "النسيج")


def tlemcen() -> Wilaya:
    return wilaya()


def oran() -> Wilaya:
    return wilaya("Oran-test", "وهران")


def alger() -> Wilaya:
    return wilaya("Alger-test", "الجزائر")


def amina(*, pottery_: Trade | None = None, tlemcen_: Wilaya | None = None) -> User:
    user = artisan("amina", trades=[pottery_ or pottery()], wilaya_=tlemcen_ or tlemcen(), display_name="Amina Belkacem")
    ArtisanProfile.objects.filter(user=user).update(
        languages=["ar", "fr"], bio="Poterie berbère de Nedroma, فخار تقليدي"
    )
    user.profile.refresh_from_db()
    return user


def yacine(*, pottery_: Trade | None = None, oran_: Wilaya | None = None) -> User:
    user = artisan("yacine", trades=[pottery_ or pottery()], wilaya_=oran_ or oran(), display_name="Yacine Haddad")
    ArtisanProfile.objects.filter(user=user).update(languages=["fr"])
    user.profile.refresh_from_db()
    return user


def karim(*, pottery_: Trade | None = None, tlemcen_: Wilaya | None = None) -> User:
    tlemcen_ = tlemcen_ or tlemcen()
    return moderator_of(artisan("karim", trades=[pottery_ or pottery()], wilaya_=tlemcen_, display_name="Karim Benali"), wilaya_=tlemcen_)


def nadia(*, pottery_: Trade | None = None) -> User:
    pottery_ = pottery_ or pottery()
    return moderator_of(artisan("nadia", trades=[pottery_]), trade_=pottery_)


def omar(*, oran_: Wilaya | None = None) -> User:
    oran_ = oran_ or oran()
    return moderator_of(artisan("omar", wilaya_=oran_), wilaya_=oran_)


def sofia(*, weaving_: Trade | None = None, alger_: Wilaya | None = None) -> User:
    user = artisan("sofia", trades=[weaving_ or weaving()], wilaya_=alger_ or alger(), display_name="صوفيا النساجة")
    ArtisanProfile.objects.filter(user=user).update(languages=["ar", "ber"])
    user.profile.refresh_from_db()
    return user


def lina(*, weaving_: Trade | None = None, tlemcen_: Wilaya | None = None) -> User:
    return artisan("lina", trades=[weaving_ or weaving()], wilaya_=tlemcen_ or tlemcen())


def walid() -> User:
    return artisan("walid")


def leila() -> User:
    return User.objects.create_superuser("leila", "leila@example.org", "a-long-test-passphrase")
