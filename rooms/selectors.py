"""Reads of rooms and messages. Every read goes through `room_access`, which
answers a missing room and a room the user may not read with the same error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import ModeratorScope, Notification, User
from hub.protocol import AttachmentOut, Author, CardOut, MessageOut
from rooms.models import (
    Attachment,
    MemberRole,
    Membership,
    Message,
    Reaction,
    Report,
    Room,
    RoomKind,
    VoiceListen,
)


@dataclass(frozen=True)
class RoomAccess:
    room: Room
    membership: Membership | None
    user: User

    @property
    def follows(self) -> bool:
        return self.membership is not None and self.membership.active

    @cached_property
    def can_moderate(self) -> bool:
        """Whether the user moderates this room (computed on first use: it costs a query)."""
        return user_moderates(user=self.user, room=self.room, membership=self.membership)


def author_of(user: User | None) -> Author | None:
    if user is None:
        return None
    return Author(id=user.pk, name=user.display_name)


def user_moderates(*, user: User, room: Room, membership: Membership | None = None) -> bool:
    """Admins, the room's own moderators and owners, and moderators whose scope covers the room."""
    if user.is_superuser or user.is_staff:
        return True
    if membership is not None and membership.role in (MemberRole.MODERATOR, MemberRole.OWNER):
        return True
    if not room.is_public:
        return False
    scopes = ModeratorScope.objects.filter(user=user)
    if room.kind == RoomKind.GUILD:
        return scopes.filter(Q(trade_id=room.trade_id), wilaya__isnull=True).exists()
    if room.kind == RoomKind.REGION:
        return scopes.filter(Q(wilaya_id=room.wilaya_id), trade__isnull=True).exists()
    return scopes.filter(
        Q(trade_id=room.trade_id, wilaya__isnull=True)
        | Q(wilaya_id=room.wilaya_id, trade__isnull=True)
        | Q(trade_id=room.trade_id, wilaya_id=room.wilaya_id)
    ).exists()


def room_access(*, user: User, room_id: int) -> RoomAccess:
    """The room if `user` may read it; otherwise `not_found`, whether it exists or not.

    Public rooms (guild, region, trade × region) are readable by every signed-in
    member who is not banned from them; groups and direct rooms by their active members.
    """
    # A member's room comes with his membership, in one query; others' rooms by themselves.
    membership = (
        Membership.objects.select_related("room__trade", "room__wilaya")
        .filter(room_id=room_id, user=user)
        .first()
    )
    room = membership.room if membership is not None else (
        Room.objects.select_related("trade", "wilaya").filter(pk=room_id).first()
    )
    if room is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    if membership is not None and membership.banned:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    if not room.is_public and (membership is None or not membership.active):
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    return RoomAccess(room=room, membership=membership, user=user)


@dataclass(frozen=True)
class SubscriptionView:
    """What a member's subscription to a room starts from (`room_subscription`)."""

    room_id: int
    last_seq: int
    last_rev: int
    #: The member's read marker, or the room's last message when he does not follow it.
    read_id: int
    unread: int


_PUBLIC_KINDS = (RoomKind.GUILD.value, RoomKind.REGION.value, RoomKind.GUILD_REGION.value)

# The room, the member's rights and read marker, and his unread count (only when he is behind:
# nothing is unread past the room's last message), in one statement: a crowd subscribing after
# a restart made three ORM queries each, built and compiled per subscription.
_SUBSCRIPTION_SQL = f"""
SELECT r.kind, r.last_seq, r.last_rev, m.active, m.banned, m.last_read_seq,
       CASE WHEN m.active AND m.last_read_seq < r.last_seq THEN (
           SELECT COUNT(*) FROM {Message._meta.db_table} x
           WHERE x.room_id = r.id AND x.seq > m.last_read_seq AND x.deleted_at IS NULL
             AND (x.author_id IS NULL OR x.author_id <> %s)
       ) ELSE 0 END
FROM {Room._meta.db_table} r LEFT JOIN {Membership._meta.db_table} m ON m.room_id = r.id AND m.user_id = %s
WHERE r.id = %s
"""


def room_subscription(*, user_id: int, room_id: int) -> SubscriptionView:
    """The room's position and the member's read state, by `room_access`'s rules (a room he
    may not read and a missing one are both `not_found`); one statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_SUBSCRIPTION_SQL, [user_id, user_id, room_id])
        row = cursor.fetchone()
    if row is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    kind, last_seq, last_rev, active, banned, last_read_seq, unread = row
    member = active is not None
    if (member and banned) or (kind not in _PUBLIC_KINDS and not (member and active)):
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such room."), room=room_id)
    follows = member and bool(active)
    return SubscriptionView(
        room_id=room_id,
        last_seq=last_seq,
        last_rev=last_rev,
        read_id=last_read_seq if follows else last_seq,
        unread=int(unread or 0) if follows else 0,
    )


def _messages_with_details(qs: QuerySet[Message]) -> QuerySet[Message]:
    return qs.select_related("author", "author__profile").prefetch_related(
        Prefetch("reactions", queryset=Reaction.objects.order_by("id")),
        Prefetch("attachments", queryset=Attachment.objects.order_by("id")),
        Prefetch("attachments__listens", queryset=VoiceListen.objects.order_by("id")),
    )


def attachment_url(attachment_id: int, variant: str) -> str:
    """Where a reader gets an image (`image` or `thumb`) or a recording (`audio`): through
    `attachment_file`'s check."""
    return reverse("api:attachment_file", kwargs={"attachment_id": attachment_id, "variant": variant})


def attachment_out(a: Attachment, *, listens: Iterable[VoiceListen] | None = None) -> AttachmentOut:
    """`listens` defaults to the attachment's own (prefetch them); a new one has none."""
    if a.kind == Attachment.Kind.VOICE:
        return AttachmentOut(
            id=a.pk,
            kind="voice",
            url=attachment_url(a.pk, "audio"),
            content_type=a.content_type,
            duration_ms=a.duration_ms,
            waveform=list(a.waveform),
            listened_by=[v.user_id for v in (a.listens.all() if listens is None else listens)],
        )
    return AttachmentOut(
        id=a.pk,
        url=attachment_url(a.pk, "image"),
        thumb=attachment_url(a.pk, "thumb"),
        width=a.width,
        height=a.height,
    )


def attachment_for_reader(*, user: User, attachment_id: int) -> Attachment:
    """The attachment `attachment_id` if `user` may see it, else `not_found`.

    A reader of its room sees it once it is on a message that is not deleted; before
    that, only its uploader does."""
    attachment = Attachment.objects.select_related("message").filter(pk=attachment_id).first()
    missing = HirfaError(ErrorCode.NOT_FOUND, _("Not found."))
    if attachment is None:
        raise missing
    try:
        room_access(user=user, room_id=attachment.room_id)
    except HirfaError:
        raise missing from None
    message = attachment.message
    if message is None and attachment.uploader_id != user.pk:
        raise missing
    if message is not None and message.deleted_at is not None:
        raise missing
    return attachment


def message_frame(
    message: Message,
    *,
    reactions: Iterable[Reaction] | None = None,
    attachments: Iterable[Attachment] | None = None,
) -> MessageOut:
    """The message's whole state as the protocol sends it.

    `reactions` and `attachments` default to the message's own (prefetch them);
    a caller that knows them (a message just created has none) passes them.
    """
    deleted = message.deleted_at is not None
    reaction_map: dict[str, list[int]] = {}
    attachment_list: list[AttachmentOut] = []
    if not deleted:
        for reaction in message.reactions.all() if reactions is None else reactions:
            reaction_map.setdefault(reaction.emoji, []).append(reaction.user_id)
        attachment_list = [
            attachment_out(a) for a in (message.attachments.all() if attachments is None else attachments)
        ]
    return MessageOut(
        room=message.room_id,
        id=message.seq,
        rev=message.rev,
        author=author_of(message.author),
        client_id=message.client_id,
        text="" if deleted else message.text,
        reply_to=message.reply_to_seq,
        mentions=[] if deleted else list(message.mentions),
        reactions=reaction_map,
        attachments=attachment_list,
        card=None if deleted or not message.card else CardOut.model_validate(message.card),
        created_at=message.created_at.isoformat(),
        edited_at=message.edited_at.isoformat() if message.edited_at else None,
        deleted=deleted,
    )


def message_by_seq(*, room: Room, seq: int) -> Message:
    message = _messages_with_details(Message.objects.filter(room=room, seq=seq)).first()
    if message is None:
        raise HirfaError(ErrorCode.NOT_FOUND, _("No such message."), room=room.pk, id=seq)
    return message


def room_history(
    *, user: User, room_id: int, before: int | None = None, limit: int = 50
) -> tuple[list[MessageOut], bool]:
    """Up to `limit` messages before id `before` (the newest when None), oldest first; and whether older ones remain."""
    access = room_access(user=user, room_id=room_id)
    qs = Message.objects.filter(room=access.room)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    rows = list(_messages_with_details(qs.order_by("-seq"))[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return [message_frame(m) for m in rows], more


def room_changes(
    *, user: User, room_id: int, since_rev: int, limit: int = 200
) -> tuple[list[MessageOut], bool]:
    """Every message changed after `since_rev`, in rev order; and whether more remain."""
    access = room_access(user=user, room_id=room_id)
    return room_changes_unchecked(room_id=access.room.pk, since_rev=since_rev, limit=limit)


def room_changes_unchecked(
    *, room_id: int, since_rev: int, limit: int
) -> tuple[list[MessageOut], bool]:
    qs = Message.objects.filter(room_id=room_id, rev__gt=since_rev).order_by("rev")
    rows = list(_messages_with_details(qs)[: limit + 1])
    more = len(rows) > limit
    return [message_frame(m) for m in rows[:limit]], more


def unread_count(*, user: User, room: Room, read_seq: int) -> int:
    return (
        Message.objects.filter(room=room, seq__gt=read_seq, deleted_at__isnull=True)
        .exclude(author=user)
        .count()
    )


@dataclass(frozen=True)
class RoomSummary:
    id: int
    kind: str
    title: str
    last_id: int
    rev: int
    read_id: int
    unread: int
    role: str
    live_meeting: bool = False


def rooms_for_user(*, user: User) -> list[RoomSummary]:
    """The rooms `user` follows, with unread counts, most recently active first."""
    memberships = (
        Membership.objects.filter(user=user, active=True, banned=False)
        .select_related("room", "room__trade", "room__wilaya")
        .annotate(
            unread=Count(
                "room__messages",
                filter=Q(
                    room__messages__seq__gt=F("last_read_seq"),
                    room__messages__deleted_at__isnull=True,
                )
                & ~Q(room__messages__author=user),
            )
        )
        .order_by("-room__last_rev", "room_id")
    )
    return [
        RoomSummary(
            id=m.room.pk,
            kind=m.room.kind,
            title=m.room.display_title(),
            last_id=m.room.last_seq,
            rev=m.room.last_rev,
            read_id=m.last_read_seq,
            unread=m.unread,
            role=m.role,
        )
        for m in memberships
    ]


def public_rooms(*, user: User, kind: str | None = None, query: str = "") -> QuerySet[Room]:
    """Public rooms `user` is not banned from, with whether he follows each."""
    qs = Room.objects.filter(
        kind__in=[RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION]
    ).select_related("trade", "wilaya")
    if kind:
        qs = qs.filter(kind=kind)
    if query:
        qs = qs.filter(
            Q(title__icontains=query)
            | Q(trade__name_fr__icontains=query)
            | Q(trade__name_ar__icontains=query)
            | Q(trade__name_en__icontains=query)
            | Q(wilaya__name_fr__icontains=query)
            | Q(wilaya__name_ar__icontains=query)
        )
    banned = Membership.objects.filter(room=OuterRef("pk"), user=user, banned=True)
    follows = Membership.objects.filter(room=OuterRef("pk"), user=user, active=True)
    return (
        qs.annotate(banned=Exists(banned), follows=Exists(follows))
        .filter(banned=False)
        .order_by("kind", "id")
    )


def room_members(*, user: User, room_id: int) -> list[Membership]:
    access = room_access(user=user, room_id=room_id)
    return list(
        Membership.objects.filter(room=access.room, active=True, banned=False)
        .select_related("user", "user__profile")
        .order_by("user__username")
    )


def member_is_muted(membership: Membership | None) -> bool:
    return (
        membership is not None
        and membership.muted_until is not None
        and membership.muted_until > timezone.now()
    )


# --- notifications and the moderators' queue (read by the REST API) ----------


def notifications_recent(*, user: User, unread_only: bool = False, limit: int = 50) -> list[Notification]:
    """`user`'s own notifications, newest first; never anyone else's."""
    qs = Notification.objects.filter(user=user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return list(qs.order_by("-id")[: max(1, min(limit, 200))])


def _moderated_rooms_q(user: User) -> Q:
    """A filter on the rooms `user` may moderate (a superset: each is checked again)."""
    if user.is_superuser or user.is_staff:
        return Q()
    own = Membership.objects.filter(
        user=user, role__in=[MemberRole.MODERATOR, MemberRole.OWNER]
    ).values("room_id")
    q = Q(pk__in=own)
    public = [RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION]
    for scope in ModeratorScope.objects.filter(user=user):
        if scope.trade_id and scope.wilaya_id:
            q |= Q(kind=RoomKind.GUILD_REGION, trade_id=scope.trade_id, wilaya_id=scope.wilaya_id)
        elif scope.trade_id:
            q |= Q(kind__in=public, trade_id=scope.trade_id)
        elif scope.wilaya_id:
            q |= Q(kind__in=public, wilaya_id=scope.wilaya_id)
    return q


def user_moderates_any(*, user: User) -> bool:
    """Whether `user` moderates at least one room (so the moderators' queue is his)."""
    if not user.is_authenticated:
        return False
    if user.is_superuser or user.is_staff:
        return True
    return (
        ModeratorScope.objects.filter(user=user).exists()
        or Membership.objects.filter(
            user=user, role__in=[MemberRole.MODERATOR, MemberRole.OWNER]
        ).exists()
    )


def reports_open(*, moderator: User, limit: int = 200) -> list[Report]:
    """Open reports of messages in rooms `moderator` moderates and may read, oldest first.

    Every row passes `room_access(...).can_moderate`, the rule the services
    apply when the moderator acts on it.
    """
    rooms = Room.objects.filter(_moderated_rooms_q(moderator)).values("pk")
    rows = (
        Report.objects.filter(status=Report.Status.OPEN, message__room__in=rooms)
        .select_related(
            "reporter", "reporter__profile", "message__room", "message__room__trade",
            "message__room__wilaya", "message__author", "message__author__profile",
        )
        .prefetch_related("message__reactions", "message__attachments")
        .order_by("id")
    )
    allowed: dict[int, bool] = {}
    found: list[Report] = []
    for report in rows[: limit * 2]:
        room_id = report.message.room_id
        if room_id not in allowed:
            try:
                allowed[room_id] = room_access(user=moderator, room_id=room_id).can_moderate
            except HirfaError:
                allowed[room_id] = False
        if allowed[room_id]:
            found.append(report)
            if len(found) >= limit:
                break
    return found
