from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.urls import reverse
from PIL import Image

from hub.models import ArtisanProfile, Trade, User, Wilaya
from rooms.models import Membership, RoomKind

pytestmark = pytest.mark.usefixtures("reference_data")

PASSWORD = "a-long-test-passphrase"


def signup_data(**overrides):
    data = {
        "username": "amina",
        "email": "amina@example.org",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "display_name": "Amina B.",
        "wilaya": str(Wilaya.objects.get(code=13).pk),
        "trades": [str(Trade.objects.get(slug="pottery-ceramics").pk)],
        "languages": ["ar", "fr"],
    }
    data.update(overrides)
    return data


@pytest.fixture
def amina(client):
    client.post(reverse("signup"), signup_data())
    client.logout()
    return User.objects.get(username="amina")


def test_signup_page_groups_trades_by_domain_and_has_csrf(client):
    page = client.get(reverse("signup"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "csrfmiddlewaretoken" in html
    assert 'class="form"' in html and 'class="field' in html and "btn-primary" in html
    # The three domains label the groups of trades.
    for domain in ("Artisanat traditionnel et d&#x27;art", "Artisanat de production de biens", "Artisanat de production de services"):
        assert domain in html
    assert "Tlemcen" in html and "Poterie et céramique" in html


def test_signup_draws_each_trade_with_its_icon_from_the_sprite(client):
    html = client.get(reverse("signup")).content.decode()
    pottery = Trade.objects.get(slug="pottery-ceramics")
    # In the trade's label, between its box and its name; decorative (the name is the label).
    assert re.search(
        rf'<input[^>]*value="{pottery.pk}"[^>]*>\s*<svg class="icon trade-icon" aria-hidden="true" focusable="false">'
        r'<use href="[^"]*/icons\.svg#amphora"></use></svg>\s*Poterie et céramique</label>',
        html,
    )
    drawn = re.findall(r'<svg class="icon trade-icon"[^>]*><use href="[^"]*#([a-z0-9-]+)"></use></svg>', html)
    assert len(drawn) == Trade.objects.count()


def test_a_trade_without_a_known_icon_is_drawn_with_the_default(client):
    Trade.objects.filter(slug="copperware").update(icon="no-such-symbol")
    html = client.get(reverse("signup")).content.decode()
    assert "#no-such-symbol" not in html and "#hammer" in html


def test_signup_in_arabic_shows_arabic_names(client):
    page = client.get(reverse("signup"), HTTP_ACCEPT_LANGUAGE="ar")
    html = page.content.decode()
    assert "تلمسان" in html and "الفخار والخزف" in html


def test_signup_logs_in_places_in_rooms_and_redirects_to_rooms(client):
    response = client.post(reverse("signup"), signup_data())
    assert response.status_code == 302
    assert response["Location"] == reverse("rooms")
    user = User.objects.get(username="amina")
    assert int(client.session["_auth_user_id"]) == user.pk
    profile = ArtisanProfile.objects.get(user=user)
    assert profile.display_name == "Amina B." and profile.languages == ["ar", "fr"]
    kinds = set(Membership.objects.filter(user=user, active=True).values_list("room__kind", flat=True))
    assert kinds == {RoomKind.GUILD, RoomKind.REGION, RoomKind.GUILD_REGION}
    # Signed in, the sign-up page sends to the rooms.
    assert client.get(reverse("signup"))["Location"] == reverse("rooms")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password2": "something-else-entirely"}, "password2"),
        ({"password1": "123456", "password2": "123456"}, "password1"),
        ({"username": "bad name!"}, "username"),
        ({"trades": []}, "trades"),
        ({"wilaya": ""}, "wilaya"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_signup_errors_are_shown_and_nothing_is_created(client, overrides, field):
    response = client.post(reverse("signup"), signup_data(**overrides))
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert 'class="errors"' in response.content.decode()
    assert not User.objects.filter(username="amina").exists()


def test_signup_with_a_taken_username(client, amina):
    response = client.post(reverse("signup"), signup_data(username="Amina", email="other@example.org"))
    assert response.status_code == 200
    assert "username" in response.context["form"].errors
    assert User.objects.filter(username__iexact="amina").count() == 1


def test_signup_refuses_a_post_without_csrf(amina):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("signup"), signup_data(username="yacine"))
    assert response.status_code == 403
    assert not User.objects.filter(username="yacine").exists()


def test_login_redirects_to_rooms_and_logout_is_post_only(client, amina):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and "csrfmiddlewaretoken" in page.content.decode()
    bad = client.post(reverse("login"), {"username": "amina", "password": "wrong-password"})
    assert bad.status_code == 200 and "_auth_user_id" not in client.session
    response = client.post(reverse("login"), {"username": "amina", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("rooms")
    assert int(client.session["_auth_user_id"]) == amina.pk

    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_password_change(client, amina):
    assert client.get(reverse("password_change"))["Location"].startswith(reverse("login"))
    client.force_login(amina)
    assert client.get(reverse("password_change")).status_code == 200
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "another-long-phrase-42", "new_password2": "another-long-phrase-42"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert client.get(reverse("password_change_done")).status_code == 200
    amina.refresh_from_db()
    assert amina.check_password("another-long-phrase-42")


def test_password_reset_by_email(client, amina):
    assert client.get(reverse("password_reset")).status_code == 200
    response = client.post(reverse("password_reset"), {"email": "amina@example.org"})
    assert response["Location"] == reverse("password_reset_done")
    assert client.get(reverse("password_reset_done")).status_code == 200
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["amina@example.org"]
    assert "\n" not in message.subject
    link = re.search(r"https?://[^/\s]+(/password/reset/\S+/)", message.body).group(1)

    form = client.get(link, follow=True)
    assert form.status_code == 200 and form.context["validlink"]
    set_password_url = form.redirect_chain[-1][0] if form.redirect_chain else link
    done = client.post(set_password_url, {"new_password1": "brand-new-phrase-77", "new_password2": "brand-new-phrase-77"})
    assert done["Location"] == reverse("password_reset_complete")
    assert client.get(reverse("password_reset_complete")).status_code == 200
    amina.refresh_from_db()
    assert amina.check_password("brand-new-phrase-77")


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.org"})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []


def _png(size=(700, 700)) -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, "PNG")
    out.seek(0)
    out.name = "me.png"
    return out


def test_profile_view_and_edit_with_avatar(client, amina, media_root):
    assert client.get(reverse("profile"))["Location"].startswith(reverse("login"))
    client.force_login(amina)
    page = client.get(reverse("profile"))
    assert page.status_code == 200
    assert page.context["form"].initial["display_name"] == "Amina B."
    assert 'enctype="multipart/form-data"' in page.content.decode()

    oran = Wilaya.objects.get(code=31)
    glass = Trade.objects.get(slug="glass")
    response = client.post(
        reverse("profile"),
        {
            "display_name": "Amina Benali",
            "wilaya": str(oran.pk),
            "trades": [str(glass.pk)],
            "languages": ["fr"],
            "bio": "Verre soufflé.",
            "avatar": _png(),
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("profile")
    profile = ArtisanProfile.objects.get(user=amina)
    assert (profile.display_name, profile.wilaya, profile.bio) == ("Amina Benali", oran, "Verre soufflé.")
    assert list(profile.trades.all()) == [glass]
    assert profile.avatar.name.endswith(".png")
    active = set(
        Membership.objects.filter(user=amina, active=True).values_list("room__kind", "room__wilaya__code")
    )
    assert (RoomKind.REGION, 31) in active and (RoomKind.REGION, 13) not in active

    public = client.get(reverse("profile_public", args=["amina"]))
    assert public.status_code == 200 and "Amina Benali" in public.content.decode()
    assert client.get(reverse("profile_public", args=["nobody"])).status_code == 404


def test_profile_refuses_a_bad_avatar_with_a_message(client, amina, media_root):
    client.force_login(amina)
    fake = io.BytesIO(b"not an image at all")
    fake.name = "me.jpg"
    response = client.post(
        reverse("profile"),
        {
            "display_name": "Amina",
            "wilaya": str(Wilaya.objects.get(code=13).pk),
            "trades": [str(Trade.objects.get(slug="pottery-ceramics").pk)],
            "avatar": fake,
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["avatar"]
    assert not ArtisanProfile.objects.get(user=amina).avatar
