"""The registry of personal data: every relation to the user model is covered by a part,
and the export carries what each app holds about a member."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models

from hub import personal_data

PROJECT_APPS = ("hub", "rooms", "signaling", "gatherings", "registry")


def _relations_to_the_user() -> set[str]:
    user_model = get_user_model()
    found = set()
    for label in PROJECT_APPS:
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.get_fields():
                if (
                    isinstance(field, (models.ForeignKey, models.OneToOneField, models.ManyToManyField))
                    and not field.auto_created
                    and field.related_model is user_model
                ):
                    found.add(f"{model._meta.label}.{field.name}")
    return found


def test_every_relation_to_the_user_is_exported_or_left_out_with_a_reason():
    covered: dict[str, str] = {}
    for part in personal_data.parts():
        for name in part.exported:
            assert name not in covered, f"{name} is claimed by {covered[name]} and {part.app}"
            covered[name] = part.app
        for name, reason in part.left_out.items():
            assert reason.strip(), f"{name}: say why it is left out"
            assert name not in covered, f"{name} is claimed by {covered[name]} and {part.app}"
            covered[name] = part.app
    relations = _relations_to_the_user()
    assert relations - covered.keys() == set(), "relations to the user that no part covers"
    assert covered.keys() - relations == set(), "parts naming relations that do not exist"


def test_each_app_registers_its_part():
    assert [p.app for p in personal_data.parts()] == ["hub", "rooms", "signaling", "gatherings", "registry"]


@pytest.mark.django_db
def test_the_export_carries_rsvps_attendance_and_the_calendar_feed():
    from gatherings import services as gathering_services
    from rooms.models import Room, RoomKind
    from signaling import services as meeting_services
    from tests import factories

    pottery, tlemcen = factories.trade(), factories.wilaya()
    karim = factories.karim(pottery_=pottery, tlemcen_=tlemcen)
    amina = factories.amina(pottery_=pottery, tlemcen_=tlemcen)
    room = Room.objects.get(kind=RoomKind.REGION, wilaya=tlemcen)
    gathering = gathering_services.gathering_schedule(
        user=karim,
        room_id=room.pk,
        title="Atelier",
        start=datetime.now(UTC) + timedelta(days=2),
        duration=timedelta(hours=1),
    )
    gathering_services.rsvp_set(user=amina, gathering_id=gathering.pk, status="going")
    gathering_services.feed_token_get(user=amina)
    meeting = meeting_services.meeting_start(user=karim, room_id=room.pk).meeting
    assert meeting is not None
    meeting_services.meeting_attend(user=amina, meeting_id=meeting)

    data = personal_data.account_export(user=amina)

    assert [r["gathering"] for r in data["rsvps"]] == [gathering.pk]
    assert data["rsvps"][0]["status"] == "going"
    assert data["calendar_feed"] is not None
    assert [a["meeting"] for a in data["meeting_attendance"]] == [meeting]
