"""Favourites and followers: Sofia keeps Amina's tajine and follows her; Amina sees how many
do; a piece taken down or an artisan gone leaves the list at once; the bounds hold."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.errors import ErrorCode, HirfaError
from registry import selectors, services
from registry.models import Favourite, Follow, ProductStatus


@pytest.fixture
def tajine(amina):
    return services.product_create(user=amina, title="Tajine de Tlemcen", price_dzd=3500)


def test_a_member_keeps_a_piece_and_its_artisan_sees_the_count(amina, sofia, tajine):
    assert services.product_favourite(user=sofia, product_id=tajine.pk) is True
    assert services.product_favourite(user=sofia, product_id=tajine.pk) is True  # idempotent
    assert selectors.product_following(product_id=tajine.pk, viewer=amina) == selectors.Following(1, False)
    assert selectors.product_following(product_id=tajine.pk, viewer=sofia).mine
    assert [p.pk for p in selectors.favourites_of(user=sofia).products] == [tajine.pk]
    assert services.product_favourite(user=sofia, product_id=tajine.pk, keep=False) is False
    assert selectors.favourites_of(user=sofia).products == []


def test_a_member_follows_an_artisan_who_sees_the_count(amina, sofia, yacine):
    services.artisan_follow(user=sofia, artisan_id=amina.pk)
    services.artisan_follow(user=yacine, artisan_id=amina.pk)
    services.artisan_follow(user=sofia, artisan_id=amina.pk)
    assert selectors.artisan_following(artisan_id=amina.pk, viewer=amina) == selectors.Following(2, False)
    assert [c.username for c in selectors.favourites_of(user=sofia).artisans] == ["amina"]
    services.artisan_follow(user=sofia, artisan_id=amina.pk, follow=False)
    assert selectors.artisan_following(artisan_id=amina.pk, viewer=sofia) == selectors.Following(1, False)


def test_own_pieces_oneself_drafts_and_strangers_are_refused(amina, sofia, tajine):
    draft = services.product_create(user=amina, title="Jarre", status=ProductStatus.DRAFT)
    cases = [
        (lambda: services.product_favourite(user=amina, product_id=tajine.pk), ErrorCode.INVALID),
        (lambda: services.product_favourite(user=sofia, product_id=draft.pk), ErrorCode.NOT_FOUND),
        (lambda: services.product_favourite(user=sofia, product_id=999_999), ErrorCode.NOT_FOUND),
        (lambda: services.artisan_follow(user=amina, artisan_id=amina.pk), ErrorCode.INVALID),
        (lambda: services.artisan_follow(user=sofia, artisan_id=999_999), ErrorCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(HirfaError) as info:
            call()
        assert info.value.code == code
    assert not Favourite.objects.exists() and not Follow.objects.exists()


def test_a_hidden_piece_and_a_deactivated_artisan_leave_the_lists_at_once(amina, sofia, tajine):
    services.product_favourite(user=sofia, product_id=tajine.pk)
    services.artisan_follow(user=sofia, artisan_id=amina.pk)
    tajine.status = ProductStatus.HIDDEN
    tajine.save(update_fields=["status"])
    assert selectors.favourites_of(user=sofia).products == []
    amina.is_active = False
    amina.save(update_fields=["is_active"])
    assert selectors.favourites_of(user=sofia).artisans == []


def test_a_member_keeps_a_bounded_number(amina, sofia, tajine, monkeypatch):
    monkeypatch.setattr(services, "FAVOURITES_MAX", 1)
    other = services.product_create(user=amina, title="Jarre", price_dzd=900)
    services.product_favourite(user=sofia, product_id=tajine.pk)
    with pytest.raises(HirfaError) as info:
        services.product_favourite(user=sofia, product_id=other.pk)
    assert info.value.code == ErrorCode.LIMIT_REACHED


def test_the_pages_need_an_account_and_post_only(client, amina, sofia, tajine):
    favourite = reverse("registry_product_favourite", args=[tajine.pk])
    follow = reverse("registry_follow", args=["amina"])
    assert client.post(favourite).status_code == 302 and not Favourite.objects.exists()
    assert client.get(reverse("registry_favourites")).status_code == 302
    client.force_login(sofia)
    assert client.get(favourite).status_code == 405
    assert client.post(favourite, {"next": "https://evil.example/"})["Location"] == reverse(
        "registry_product", args=[tajine.pk]
    )
    assert client.post(follow).status_code == 302
    assert client.post(reverse("registry_follow", args=["nobody"])).status_code == 404
    page = client.get(reverse("registry_favourites")).content.decode()
    assert "Tajine de Tlemcen" in page and 'data-username="amina"' in page


JSON = {"HTTP_ACCEPT": "application/json", "HTTP_ACCEPT_LANGUAGE": "en"}


def test_a_script_toggles_in_place_and_reads_the_new_state(client, amina, sofia, tajine):
    """The pages' buttons post with `Accept: application/json` (registry/static/registry/toggle.js):
    the answer is the new state, the button's label and the count as the page writes them."""
    client.force_login(sofia)
    follow = reverse("registry_follow", args=["amina"])
    answer = client.post(follow, {"follow": "1"}, **JSON)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    assert answer.json() == {"mine": True, "count": 1, "label": "Following", "count_text": "1 follower"}
    answer = client.post(follow, {"follow": "0"}, **{**JSON, "HTTP_ACCEPT_LANGUAGE": "ar"}).json()
    assert answer["mine"] is False and answer["count"] == 0 and answer["label"] != "Follow"  # in Arabic
    favourite = reverse("registry_product_favourite", args=[tajine.pk])
    assert client.post(favourite, {"keep": "1"}, **JSON).json() == {
        "mine": True, "count": 1, "label": "In my favourites", "count_text": "Kept by 1 member",
    }
    assert Favourite.objects.filter(user=sofia, product=tajine).exists()


def test_a_refusal_reaches_the_script_as_a_typed_error(client, amina, sofia, tajine, monkeypatch):
    client.force_login(amina)
    answer = client.post(reverse("registry_follow", args=["amina"]), **JSON)
    assert answer.status_code == 400 and answer.json() == {"code": "invalid", "message": "You cannot follow yourself."}
    client.force_login(sofia)
    monkeypatch.setattr(services, "FAVOURITES_MAX", 0)
    answer = client.post(reverse("registry_product_favourite", args=[tajine.pk]), **JSON)
    assert answer.status_code == 429 and answer.json()["code"] == "limit_reached"
    answer = client.post(reverse("registry_product_favourite", args=[999999]), **JSON)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    # Without the script, the same refusal goes back to the page as a message.
    assert client.post(reverse("registry_product_favourite", args=[tajine.pk]))["Location"].startswith("/")
