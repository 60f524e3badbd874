"""What gatherings plug into the layers below, registered by `GatheringsConfig.ready()`:
its notification kinds, the reminder sweep (a periodic job), the rules of an
occurrence's meeting (who hosts it, who may join), and its part of a member's data."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from hub import jobs, notifications, personal_data
from hub.models import User
from signaling.join_rules import Stage, join_rule_register
from signaling.models import Meeting

REMINDER = "reminder"
GATHERING = "gathering"


class OccurrenceMeetingRule:
    """A gathering's hosts host its meetings; an occurrence's meeting is for the room's
    members, the hosts and moderators, and those going."""

    def hosts(self, *, user: User, meeting: Meeting) -> bool:
        from gatherings.selectors import meeting_hosted_by_gathering

        return meeting_hosted_by_gathering(user=user, meeting=meeting)

    def check_join(self, *, user: User, meeting: Meeting) -> None:
        from gatherings.selectors import meeting_join_check

        meeting_join_check(user=user, meeting=meeting)

    def stage(self, *, user: User, meeting: Meeting) -> Stage | None:
        from gatherings.selectors import meeting_stage

        return meeting_stage(user=user, meeting=meeting)


def _export(user: User) -> dict[str, Any]:
    from gatherings.models import FeedToken, Gathering, Material, Rsvp

    feed = FeedToken.objects.filter(user=user).first()
    return {
        "masterclasses_presented": [
            {"gathering": g.pk, "room": g.room_id, "title": g.title, "start": g.start}
            for g in Gathering.objects.filter(presenters=user).order_by("id")
        ],
        "materials_uploaded": [
            {
                "material": m.pk,
                "gathering": m.gathering_id,
                "kind": m.kind,
                "title": m.title,
                "content_type": m.content_type,
                "size": m.size,
                "created_at": m.created_at,
            }
            for m in Material.objects.filter(uploaded_by=user).order_by("id")
        ],
        "rsvps": [
            {
                "gathering": r.gathering_id,
                "occurrence_start": r.occurrence_start,
                "status": r.status,
                "requested_at": r.requested_at,
                "updated_at": r.updated_at,
            }
            for r in Rsvp.objects.filter(user=user).order_by("id")
        ],
        "calendar_feed": {"created_at": feed.created_at} if feed is not None else None,
    }


def register() -> None:
    from gatherings.reminders import reminders_sweep

    notifications.kind_register(REMINDER, _("reminder"))
    notifications.kind_register(GATHERING, _("gathering"))
    jobs.periodic_register(reminders_sweep)
    join_rule_register("gatherings", OccurrenceMeetingRule())
    personal_data.part_register(
        personal_data.PersonalDataPart(
            app="gatherings",
            export=_export,
            exported=(
                "gatherings.Rsvp.user",
                "gatherings.FeedToken.user",
                "gatherings.Gathering.presenters",
                "gatherings.Material.uploaded_by",
            ),
            left_out={
                "gatherings.Gathering.hosts": "a role in someone's gathering, removed with the account",
                "gatherings.Gathering.created_by": "the gathering belongs to its room",
                "gatherings.ReminderSent.user": "the claim that a reminder went out (its notification is exported)",
                "gatherings.OccurrenceMeeting.opened_by": "the meeting belongs to its room",
            },
        )
    )
