"""`make demo` seeds a believable country: artisans in many wilayas with storefronts and
pieces with photos, raw-material posts, public gatherings with answers, rooms whose
conversation goes on into the last hours; a visitor's home page and a search show it.
Seeding twice adds nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from frontend.demo import MAKERS, seed_country
from gatherings.models import Gathering, Rsvp
from hub.models import ArtisanProfile
from registry import search
from registry.models import ExchangePost, Product, ProductPhoto
from rooms.models import Message
from tests.browser.test_phone_layout import load_reference_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    load_reference_data()


def sizes() -> dict[str, int]:
    return {
        "artisans": ArtisanProfile.objects.count(), "products": Product.objects.count(),
        "photos": ProductPhoto.objects.count(), "posts": ExchangePost.objects.count(),
        "gatherings": Gathering.objects.count(), "rsvps": Rsvp.objects.count(), "messages": Message.objects.count(),
    }


def test_the_demo_seeds_a_country_once(media, client):
    seed_country()
    first = sizes()
    assert first["artisans"] >= 6 + len(MAKERS) >= 30
    wilayas = set(ArtisanProfile.objects.values_list("wilaya__code", flat=True))
    assert len(wilayas) >= 20, wilayas
    assert first["products"] >= 30 and first["photos"] == first["products"]
    assert first["posts"] >= 8 and first["gatherings"] >= 3 and first["rsvps"] >= 6
    recent = Message.objects.filter(created_at__gt=timezone.now() - timedelta(hours=2)).count()
    assert recent >= 6  # a room that looks alive
    seed_country()
    assert sizes() == first

    # A buyer finds the copper artisan of Tlemcen whichever way he writes it.
    for query in ("nhas tlemcen", "نحاس", "cuivre tlemcen"):
        assert search.artisan_search(query=query).items[0].username == "nadir", query
    home = client.get("/").content.decode()
    assert home.count('class="product-tile') >= 6 and "Tapis nememcha" in home
    assert "Salon des métiers d&#x27;art de Tlemcen" in home


def test_make_demo_runs_the_country_seed(media, capsys):
    call_command("demo")
    out = capsys.readouterr().out
    assert "amina" in out and "nadir" in out
    assert Product.objects.filter(artisan__username="nadir").count() == 2
