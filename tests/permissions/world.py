"""The world of the authorization matrix: its personas, its rooms and what they hold.

`docs/permissions.md` names the roles and room kinds; this module gives each
of them one person and one room, built once per test, with every membership
the matrix needs. A cell that changes the world (a post that makes a reader
follow, a ban, a deleted message) is followed by `World.reset`, which puts the
memberships, the messages and the rooms back as they were built.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from PIL import Image

from gatherings import recurrence
from gatherings import services as gathering_services
from gatherings.models import Gathering
from hub.errors import HirfaError
from hub.models import User
from rooms import services as room_services
from rooms.attachments import attachment_upload, upload_buckets, voice_upload
from rooms.models import Membership, Message, Reaction, Report, Room, RoomKind
from tests import factories
from tests.audio_samples import voice_bytes

#: Column order of every table in docs/permissions.md.
ROLES = ("anonymous", "member", "other_wilaya", "banned", "muted", "trade_moderator", "wilaya_moderator", "admin")
#: The room kinds, in the order of the document's sections.
KINDS = (RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION, RoomKind.GROUP, RoomKind.DIRECT)

MISSING_ID = 987_654_321


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (180, 90, 40)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class World:
    users: dict[str, User]  # by role; "anonymous" is absent
    ghania: User  # owns the group, the other side of the direct room, author of the targets
    kamel: User  # whom moderators mute and ban
    rooms: dict[str, Room]  # by kind
    target: dict[str, int]  # kind -> seq of ghania's message
    own: dict[tuple[str, str], int]  # (role, kind) -> seq of the role's own message
    reports: dict[str, int]  # kind -> id of kamel's report of ghania's message
    gatherings: dict[str, int] = field(default_factory=dict)  # kind -> gathering id
    occurrence_now: dict[str, str] = field(default_factory=dict)  # kind -> key of the first occurrence
    occurrence_next: dict[str, str] = field(default_factory=dict)  # kind -> key of the second
    registry: dict[str, int] = field(default_factory=dict)  # product, product_report, post -> id
    tag_code: str = "TAGTAJN2"  # the authenticity tag of Ghania's product
    enquiry_link: str = ""  # the signed part of a buyer's link to his conversation with Ghania
    attachments: dict[str, int] = field(default_factory=dict)  # kind -> ghania's image in that room
    voices: dict[str, int] = field(default_factory=dict)  # kind -> ghania's voice message in that room
    _memberships: list[Membership] = field(default_factory=list)

    def user(self, role: str) -> User | AnonymousUser:
        return self.users.get(role) or AnonymousUser()

    def own_seq(self, role: str, kind: str) -> int:
        """The role's own message in the room; ghania's when he could never post there."""
        return self.own.get((role, kind), self.target[kind])

    def reset(self, kind: str) -> None:
        """The room of `kind` as built: memberships, messages, reports, slow mode, meeting lock."""
        from signaling.models import Meeting

        room = self.rooms[kind]
        kept = [m for m in self._memberships if m.room_id == room.pk]
        Membership.objects.filter(room=room).exclude(pk__in=[m.pk for m in kept]).delete()
        Membership.objects.bulk_update(kept, ["role", "active", "banned", "muted_until", "source"])
        Message.objects.filter(room=room).update(deleted_at=None, deleted_by=None)
        Reaction.objects.filter(message__room=room).delete()
        Report.objects.filter(message__room=room).exclude(pk__in=self.reports.values()).delete()
        Report.objects.filter(pk__in=self.reports.values()).update(status=Report.Status.OPEN, handled_by=None)
        Room.objects.filter(pk=room.pk).update(slow_mode_seconds=0)
        Meeting.objects.filter(room=room).update(locked=False, lobby=False)
        room_services.send_buckets.reset()


def build(*, gatherings: bool = False, registry: bool = False) -> World:
    """The personas and rooms of docs/permissions.md (see its first section)."""
    poterie = factories.trade()
    tissage = factories.trade("tissage-test", "Tissage", "النسيج")
    tlemcen = factories.wilaya()
    oran = factories.wilaya("Oran-test", "وهران")

    def person(username: str, trade, wilaya) -> User:
        return factories.artisan(username, trades=[trade], wilaya_=wilaya)

    users = {
        "member": factories.amina(pottery_=poterie, tlemcen_=tlemcen),
        "other_wilaya": factories.yacine(pottery_=poterie, oran_=oran),
        "banned": person("bilal", poterie, tlemcen),
        "muted": person("mourad", poterie, tlemcen),
        "trade_moderator": factories.moderator_of(person("tahar", poterie, oran), trade_=poterie),
        "wilaya_moderator": factories.moderator_of(person("wassila", tissage, tlemcen), wilaya_=tlemcen),
        "admin": factories.artisan("adam"),
    }
    User.objects.filter(pk=users["admin"].pk).update(is_staff=True, is_superuser=True)
    users["admin"].refresh_from_db()
    ghania = person("ghania", poterie, tlemcen)
    kamel = person("kamel", poterie, tlemcen)

    by_kind = {
        RoomKind.GUILD: Room.objects.get(kind=RoomKind.GUILD, trade=poterie),
        RoomKind.REGION: Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen),
        RoomKind.GUILD_REGION: Room.objects.get(kind=RoomKind.GUILD_REGION, trade=poterie, wilaya=tlemcen),
        RoomKind.GROUP: room_services.group_create(
            user=ghania,
            title="Atelier",
            member_ids=[users["member"].pk, users["banned"].pk, users["muted"].pk, kamel.pk],
        ),
        RoomKind.DIRECT: room_services.direct_room_open(user=users["member"], other_id=ghania.pk),
    }
    rooms = {str(k): v for k, v in by_kind.items()}

    # Everyone who may post leaves one message of his own, before bans and mutes.
    own: dict[tuple[str, str], int] = {}
    target: dict[str, int] = {}
    attachments: dict[str, int] = {}  # kind -> the image on ghania's target message
    voices: dict[str, int] = {}  # kind -> the voice message on ghania's target message
    for kind, room in rooms.items():
        attachments[kind] = attachment_upload(user=ghania, room_id=room.pk, upload=png_bytes()).pk
        voices[kind] = voice_upload(user=ghania, room_id=room.pk, upload=voice_bytes(0.5)).pk
        upload_buckets.reset()
        target[kind] = room_services.message_post(
            user=ghania,
            room_id=room.pk,
            client_id="target",
            text="Salam",
            attachment_ids=[attachments[kind], voices[kind]],
        ).message.id
        for role, user in users.items():
            try:
                posted = room_services.message_post(
                    user=user, room_id=room.pk, client_id=f"own-{role}", text=f"{role} here"
                )
            except HirfaError:  # he may not read the room: no message of his own
                continue
            own[(role, kind)] = posted.message.id
            room_services.send_buckets.reset()
    # Posting made readers follow public rooms: back to what the profiles say.
    for kind, room in rooms.items():
        if room.is_public:
            Membership.objects.filter(room=room, source=Membership.Source.FOLLOW).delete()

    admin = users["admin"]
    reports: dict[str, int] = {}
    for kind, room in rooms.items():
        if kind != RoomKind.DIRECT:
            reports[kind] = room_services.message_report(
                user=kamel, room_id=room.pk, seq=target[kind], reason="spam"
            ).pk
        moderator = ghania if not room.is_public else admin
        if kind == RoomKind.DIRECT:
            continue  # a direct room has no moderator: no one is banned or muted there
        room_services.member_ban(moderator=moderator, room_id=room.pk, target_id=users["banned"].pk)
        room_services.member_mute(
            moderator=moderator, room_id=room.pk, target_id=users["muted"].pk, minutes=24 * 60
        )

    world = World(
        users=users,
        ghania=ghania,
        kamel=kamel,
        rooms=rooms,
        target=target,
        own=own,
        reports=reports,
        attachments=attachments,
        voices=voices,
    )
    if gatherings:
        _gatherings(world)
    if registry:
        _registry(world, tlemcen)
    world._memberships = list(Membership.objects.filter(room_id__in=[r.pk for r in rooms.values()]))
    return world


def _gatherings(world: World) -> None:
    """A weekly gathering in every public room (the only ones that hold gatherings), starting now."""
    start = (timezone.now() + timedelta(minutes=5)).replace(microsecond=0)
    for kind, room in world.rooms.items():
        if not room.is_public:
            continue
        gathering = gathering_services.gathering_schedule(
            user=world.users["admin"],
            room_id=room.pk,
            title=f"Gathering {kind}",
            start=start,
            duration=timedelta(minutes=60),
            rrule="FREQ=WEEKLY;COUNT=4",
        )
        world.gatherings[kind] = gathering.pk
        world.occurrence_now[kind] = recurrence.occurrence_key(start)
        world.occurrence_next[kind] = recurrence.occurrence_key(start + timedelta(days=7))
    assert Gathering.objects.count() >= 3


def _registry(world: World, wilaya) -> None:
    """Ghania's product (reported by Kamel), her offer on the exchange, her card waiting for review."""
    from registry import selectors as registry_selectors
    from registry import services as registry_services

    product = registry_services.product_create(user=world.ghania, title="Tajine")
    world.registry["product"] = product.pk
    type(product).objects.filter(pk=product.pk).update(auth_code=world.tag_code)
    world.registry["product_report"] = registry_services.product_report(
        user=world.kamel, product_id=product.pk, reason="counterfeit"
    ).pk
    enquiry = registry_services.enquiry_send(
        product_id=product.pk, name="Lamia", contact="lamia@example.org", text="Prix ?", client_key="world"
    )
    assert enquiry is not None
    world.enquiry_link = registry_selectors.enquiry_link(enquiry).rstrip("/").rsplit("/", 1)[1]
    world.registry["post"] = registry_services.exchange_post(
        user=world.ghania, kind="offer", material="clay", quantity="10", unit="kg", wilaya_id=wilaya.pk
    ).pk
    registry_services.verification_submit(
        user=world.ghania, card_number="TL-1234", issuing_chamber="CAM Tlemcen", card_photo=png_bytes()
    )
