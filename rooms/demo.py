"""The demo's first cast: a few artisans, their rooms and messages (`manage.py demo`, whose
command lives in `frontend`, seeds these first, then a whole country around them).

Idempotent: running it again creates nothing new (users are found by
username, messages by their client id, the group by its owner and title).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError
from django.db import transaction

from hub import services
from hub.models import Trade, User, Wilaya
from rooms import services as room_services
from rooms.models import Room, RoomKind


@dataclass(frozen=True)
class Persona:
    username: str
    display_name: str
    trade: str
    wilaya: int
    languages: tuple[str, ...]
    bio: str
    moderates_wilaya: bool = False

    @property
    def password(self) -> str:
        # Printed on purpose: this is demonstration data on a local hub.
        return f"{self.username}-atelier-2025"


PERSONAS = [
    Persona("amina", "Amina B.", "pottery-ceramics", 13, ("ar", "fr"), "Potière à Tlemcen, tajines et jarres."),
    Persona("yacine", "Yacine K.", "copperware", 25, ("ar", "fr"), "نحّاس من قسنطينة، صينيات وأباريق منقوشة."),
    Persona(
        "nadia",
        "Nadia T.",
        "embroidery-traditional-dress",
        13,
        ("ar", "fr", "en"),
        "Brodeuse (chedda de Tlemcen), modératrice de la région.",
        moderates_wilaya=True,
    ),
    Persona("karim", "Karim M.", "pottery-ceramics", 25, ("ar", "fr"), "Potier, terre de Mila."),
    Persona("idir", "Idir A.", "silver-jewellery", 15, ("ber", "fr"), "Bijoutier, argent et émail d'At Yenni."),
    Persona("meriem", "Meriem H.", "carpets-weaving", 47, ("ar", "en"), "Weaver of Mzab carpets, natural dyes."),
]

GROUP_TITLE = "Cuivre et argile"

# (client id, author, where, text); `where` is ("guild", trade slug), ("region", code),
# ("guild_region", slug, code), ("group",) or ("direct", other username).
MESSAGES: list[tuple[str, str, tuple[Any, ...], str]] = [
    ("demo-1", "amina", ("guild", "pottery-ceramics"), "Bonjour à tous ! Quelqu'un connaît un bon fournisseur d'argile rouge ?"),
    ("demo-2", "karim", ("guild", "pottery-ceramics"), "مرحبا أمينة، عندنا طين جيد في ميلة، يمكنني أن أرسل لك عينة."),
    ("demo-3", "amina", ("guild", "pottery-ceramics"), "Merci @karim, avec plaisir !"),
    ("demo-4", "nadia", ("region", 13), "أهلا بكم في غرفة حرفيي تلمسان. تذكير: معرض الصناعة التقليدية يوم السبت."),
    ("demo-5", "amina", ("region", 13), "J'y serai avec mes tajines et mes jarres."),
    ("demo-6", "yacine", ("guild", "copperware"), "Nouveau plateau en cuivre ciselé terminé, motifs constantinois."),
    ("demo-7", "karim", ("region", 25), "Hi all, is anyone going to the crafts fair in Algiers next month?"),
    ("demo-8", "yacine", ("region", 25), "نعم إن شاء الله، سأحضر مع بعض الصواني."),
    ("demo-9", "meriem", ("guild", "carpets-weaving"), "Just finished a new Mzab carpet, natural dyes only."),
    ("demo-10", "idir", ("guild_region", "silver-jewellery", 15), "Azul fellawen ! Qui travaille l'émail cloisonné ici ?"),
    ("demo-11", "amina", ("group",), "Let's plan our joint stand here: copper trays with ceramic inlays?"),
    ("demo-12", "yacine", ("group",), "Très bonne idée, je prépare des croquis."),
    ("demo-13", "yacine", ("direct", "amina"), "Amina, tu as reçu les photos du plateau ?"),
]


def _room_for(where: tuple[Any, ...], users: dict[str, User], group: Room, author: User) -> Room:
    kind = where[0]
    if kind == "guild":
        return Room.objects.get_or_create(kind=RoomKind.GUILD, trade=Trade.objects.get(slug=where[1]))[0]
    if kind == "region":
        return Room.objects.get_or_create(kind=RoomKind.REGION, wilaya=Wilaya.objects.get(code=where[1]))[0]
    if kind == "guild_region":
        return Room.objects.get_or_create(
            kind=RoomKind.GUILD_REGION,
            trade=Trade.objects.get(slug=where[1]),
            wilaya=Wilaya.objects.get(code=where[2]),
        )[0]
    if kind == "group":
        return group
    return room_services.direct_room_open(user=author, other_id=users[where[1]].pk)


def seed_demo() -> list[tuple[Persona, bool]]:
    """Create the demo personas, their rooms and messages when missing.

    Returns each persona with whether it was created by this call.
    """
    if Wilaya.objects.count() < 58 or not Trade.objects.filter(slug="pottery-ceramics").exists():
        raise CommandError("The reference data is missing: run `hirfa manage migrate` first.")
    created: list[tuple[Persona, bool]] = []
    users: dict[str, User] = {}
    with transaction.atomic():
        for persona in PERSONAS:
            user = User.objects.filter(username=persona.username).first()
            was_missing = user is None
            if user is None:
                user = services.artisan_register(
                    username=persona.username,
                    email=f"{persona.username}@example.org",
                    password=persona.password,
                    display_name=persona.display_name,
                    wilaya_id=Wilaya.objects.get(code=persona.wilaya).pk,
                    trade_ids=[Trade.objects.get(slug=persona.trade).pk],
                    languages=list(persona.languages),
                )
                services.profile_update(user=user, bio=persona.bio)
            created.append((persona, was_missing))
            users[persona.username] = user
            if persona.moderates_wilaya:
                services.moderator_scope_grant(
                    user=user, wilaya_id=Wilaya.objects.get(code=persona.wilaya).pk
                )
        group = Room.objects.filter(
            kind=RoomKind.GROUP, title=GROUP_TITLE, created_by=users["amina"]
        ).first() or room_services.group_create(
            user=users["amina"],
            title=GROUP_TITLE,
            member_ids=[users["yacine"].pk, users["karim"].pk],
        )
        for client_id, author_name, where, text in MESSAGES:
            author = users[author_name]
            room = _room_for(where, users, group, author)
            # Seeding is not a member typing: the per-user send rate does not apply.
            room_services.send_buckets.reset()
            room_services.message_post(user=author, room_id=room.pk, client_id=client_id, text=text)
    return created
