"""Persistent chat rooms. The database is the log: every change to a room's
messages takes the room's next `rev`, so a client that knows the last rev it
saw can be brought up to date from here, whatever the channel layer dropped."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Trade, Wilaya

#: The notification kinds rooms sends (registered in `rooms.hooks`).
MENTION = "mention"
REPORT = "report"


class RoomKind(models.TextChoices):
    GUILD = "guild", _("Trade guild")
    REGION = "region", _("Region")
    GUILD_REGION = "guild_region", _("Trade in a region")
    GROUP = "group", _("Private group")
    DIRECT = "direct", _("Direct")


class Room(models.Model):
    kind = models.CharField(_("kind"), max_length=16, choices=RoomKind.choices)
    title = models.CharField(_("title"), max_length=120, blank=True)
    topic = models.CharField(_("topic"), max_length=300, blank=True)
    trade = models.ForeignKey(Trade, null=True, blank=True, on_delete=models.PROTECT)
    wilaya = models.ForeignKey(Wilaya, null=True, blank=True, on_delete=models.PROTECT)
    # Direct rooms: "<smaller user id>:<larger user id>", so a pair has one room.
    direct_key = models.CharField(max_length=40, null=True, blank=True, unique=True)
    last_seq = models.BigIntegerField(default=0)
    last_rev = models.BigIntegerField(default=0)
    slow_mode_seconds = models.PositiveIntegerField(_("slow mode (seconds)"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("room")
        verbose_name_plural = _("rooms")
        constraints = [
            models.UniqueConstraint(
                fields=["trade"], condition=Q(kind="guild"), name="room_one_guild_per_trade"
            ),
            models.UniqueConstraint(
                fields=["wilaya"], condition=Q(kind="region"), name="room_one_region_per_wilaya"
            ),
            models.UniqueConstraint(
                fields=["trade", "wilaya"],
                condition=Q(kind="guild_region"),
                name="room_one_per_trade_and_wilaya",
            ),
        ]

    @property
    def is_public(self) -> bool:
        return self.kind in (RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION)

    def display_title(self) -> str:
        if self.title:
            return self.title
        if self.kind == RoomKind.GUILD and self.trade:
            return self.trade.name
        if self.kind == RoomKind.REGION and self.wilaya:
            return self.wilaya.name
        if self.kind == RoomKind.GUILD_REGION and self.trade and self.wilaya:
            return f"{self.trade.name} · {self.wilaya.name}"
        return str(_("Room")) + f" {self.pk}"

    def __str__(self) -> str:
        return self.display_title()


class MemberRole(models.TextChoices):
    MEMBER = "member", _("Member")
    MODERATOR = "moderator", _("Moderator")
    OWNER = "owner", _("Owner")


class Membership(models.Model):
    class Source(models.TextChoices):
        AUTO = "auto", _("From the profile")
        FOLLOW = "follow", _("Followed")
        INVITE = "invite", _("Invited")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FOLLOW)
    muted_until = models.DateTimeField(null=True, blank=True)
    banned = models.BooleanField(default=False)
    # A member who left keeps his row (and ban) but no longer follows the room.
    active = models.BooleanField(default=True)
    last_read_seq = models.BigIntegerField(default=0)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_unique")
        ]
        indexes = [models.Index(fields=["user", "active"])]


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField()
    rev = models.BigIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="messages"
    )
    client_id = models.CharField(max_length=64)
    text = models.TextField()
    reply_to_seq = models.BigIntegerField(null=True, blank=True)
    mentions = models.JSONField(default=list, blank=True)
    # What the message is about (hub.protocol.CardOut as a dict), attached by a service.
    card = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "author", "client_id"], name="message_client_id_unique"
            ),
        ]
        indexes = [models.Index(fields=["room", "rev"])]


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_unique")
        ]


class Attachment(models.Model):
    """A file for a message: an image (validated, re-encoded and thumbnailed on upload) or a
    voice recording (decoded to the end on upload, its container rewritten)."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VOICE = "voice", _("Voice message")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.IMAGE)
    image = models.ImageField(upload_to="attachments/%Y/%m/", blank=True)
    thumbnail = models.ImageField(upload_to="attachments/thumbs/%Y/%m/", blank=True)
    # Under attachments/ too: only the permission-checked view serves it.
    audio = models.FileField(upload_to="attachments/voice/%Y/%m/", blank=True)
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    # Bars of 0–31 (hub.audio.WAVEFORM_BARS of them), drawn by the player.
    waveform = models.JSONField(default=list, blank=True)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def files(self) -> list[models.fields.files.FieldFile]:
        """The stored files of this attachment (one for a voice message, two for an image)."""
        return [f for f in (self.image, self.thumbnail, self.audio) if f]


class VoiceListen(models.Model):
    """A member played a voice message (its author's own plays are not marked)."""

    attachment = models.ForeignKey(Attachment, on_delete=models.CASCADE, related_name="listens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    listened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["attachment", "user"], name="voice_listen_once")
        ]


class Report(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DISMISSED = "dismissed", _("Dismissed")
        ACTIONED = "actioned", _("Actioned")

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "reporter"], name="report_once_per_member")
        ]
