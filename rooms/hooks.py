"""What rooms plug into the foundation, registered by `RoomsConfig.ready()`: an artisan's
rooms follow his profile, its notification kinds, its part of a member's data (his
messages)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from hub import notifications, personal_data, sockets
from hub import services as hub_services
from hub.models import User
from rooms.models import MENTION, REPORT


def _export(user: User) -> dict[str, Any]:
    from rooms.models import Message

    return {
        "messages": [
            {
                "room": message.room_id,
                "seq": message.seq,
                "text": message.text,
                "created_at": message.created_at,
                "edited_at": message.edited_at,
            }
            for message in Message.objects.filter(author=user, deleted_at__isnull=True)
            .order_by("id")
            .iterator()
        ]
    }


def _profile_changed(user: User) -> None:
    from rooms.services import memberships_sync

    memberships_sync(user=user)


def register() -> None:
    from rooms.consumers import RoomFrames

    sockets.part_register("rooms", RoomFrames)
    hub_services.on_profile_changed("rooms", _profile_changed)
    notifications.kind_register(MENTION, _("mention"))
    notifications.kind_register(REPORT, _("report"))
    personal_data.part_register(
        personal_data.PersonalDataPart(
            app="rooms",
            export=_export,
            exported=("rooms.Message.author",),
            left_out={
                "rooms.Room.created_by": "a room belongs to its members",
                "rooms.Membership.user": "which rooms he follows; removed with the account",
                "rooms.Message.deleted_by": "a moderator's act on someone's message",
                "rooms.Reaction.user": "removed with the account",
                "rooms.Attachment.uploader": "the files are in his exported messages' rooms",
                "rooms.VoiceListen.user": "which voice messages he played; removed with the account",
                "rooms.Report.reporter": "a report about someone else's message",
                "rooms.Report.handled_by": "a moderator's act",
            },
        )
    )
