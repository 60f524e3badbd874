from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from hub.models import (
    ArtisanProfile,
    ModeratorScope,
    Notification,
    Trade,
    TradeDomain,
    User,
    Wilaya,
)
from rooms.demo import seed_demo
from rooms.models import Attachment, Membership, Message, Report, Room

pytestmark = pytest.mark.usefixtures("reference_data")

MODELS = [
    Wilaya, TradeDomain, Trade, User, ArtisanProfile, ModeratorScope, Notification,
    Room, Membership, Message, Report, Attachment,
]


def test_every_hub_and_rooms_model_is_registered():
    for model in MODELS:
        assert admin.site.is_registered(model), model.__name__


@pytest.fixture
def admin_client_with_data(client):
    seed_demo()
    from rooms.services import message_report

    karims = Message.objects.filter(author__username="karim").first()
    message_report(user=User.objects.get(username="amina"), room_id=karims.room_id, seq=karims.seq, reason="test")
    root = User.objects.create_superuser("root", "root@example.org", "an-admin-passphrase-9")
    client.force_login(root)
    return client


def test_changelists_and_change_pages_open(admin_client_with_data):
    client = admin_client_with_data
    for model in MODELS:
        meta = model._meta
        changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200, meta.model_name
        first = model.objects.first()
        if first is not None:
            change = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk]))
            assert change.status_code == 200, meta.model_name


def test_the_user_page_carries_moderator_scopes(admin_client_with_data):
    nadia = User.objects.get(username="nadia")
    page = admin_client_with_data.get(reverse("admin:hub_user_change", args=[nadia.pk]))
    html = page.content.decode()
    assert "moderator_scopes-TOTAL_FORMS" in html
    assert 'name="profile-0-display_name"' in html


def test_members_are_refused_the_admin(client):
    seed_demo()
    client.force_login(User.objects.get(username="amina"))
    assert client.get(reverse("admin:hub_wilaya_changelist")).status_code == 302
