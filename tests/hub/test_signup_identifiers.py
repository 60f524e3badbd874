"""Sign-up without a username or an e-mail, and log-in with any identifier: a phone number
(normalised, once per account), an e-mail (when only one account has it), the username."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.urls import reverse

from hub import services
from hub.errors import ErrorCode, HirfaError
from hub.models import Trade, User, Wilaya

pytestmark = pytest.mark.usefixtures("reference_data")

PASSWORD = "a-long-test-passphrase"


def register(**overrides):
    data = {
        "username": "", "email": "", "password": PASSWORD, "display_name": "Nadir Boumediene",
        "wilaya_id": Wilaya.objects.get(code=13).pk, "trade_ids": [Trade.objects.get(slug="copperware").pk],
        "languages": ["ar"], "phone": "0555 12 34 56",
    }
    data.update(overrides)
    return services.artisan_register(**data)


def test_a_phone_number_is_enough_and_the_username_is_made_from_the_name():
    nadir = register()
    assert nadir.phone == "213555123456" and nadir.email == "" and nadir.username == "nadir-boumediene"
    again = register(phone="0555 12 34 57")
    assert again.username == "nadir-boumediene-2"
    arabic = register(display_name="نذير", phone="0555 12 34 58")
    assert arabic.username.startswith("artisan")


@pytest.mark.parametrize("identifier", ["0555123456", "+213 555 12 34 56", "00213555123456", "nadir-boumediene", "NADIR-boumediene"])
def test_any_identifier_logs_in(identifier, rf):
    nadir = register()
    assert authenticate(rf.post("/login/"), username=identifier, password=PASSWORD) == nadir


def test_a_wrong_password_is_refused_whatever_the_identifier(rf):
    register()
    assert authenticate(rf.post("/login/"), username="0555123456", password="wrong-one-entirely") is None


def test_an_email_logs_in_only_when_one_account_has_it(rf):
    nadir = register(email="nadir@example.org")
    assert authenticate(rf.post("/login/"), username="Nadir@Example.org", password=PASSWORD) == nadir
    User.objects.create_user(username="other", email="nadir@example.org", password=PASSWORD)
    assert authenticate(rf.post("/login/"), username="nadir@example.org", password=PASSWORD) is None


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"phone": ""}, ErrorCode.EMPTY), ({"phone": "12"}, ErrorCode.INVALID)],
)
def test_no_way_to_log_in_or_a_bad_number_is_refused(overrides, code):
    with pytest.raises(HirfaError) as info:
        register(**overrides)
    assert info.value.code == code and not User.objects.exists()


def test_a_phone_number_or_an_email_has_one_account():
    register(email="nadir@example.org")
    for overrides in ({"phone": "+213555123456"}, {"phone": "", "email": "NADIR@example.org"}):
        with pytest.raises(HirfaError) as info:
            register(**overrides)
        assert info.value.code == ErrorCode.CONFLICT
    assert User.objects.count() == 1


def test_the_form_groups_the_fields_in_four_steps_with_the_map(client):
    html = client.get(reverse("signup")).content.decode()
    assert html.count('class="signup-step') == 4
    assert html.index('id="id_display_name"') < html.index('id="id_trades"') < html.index('id="id_wilaya"') < html.index('id="id_phone"')
    assert "census-map" in html and 'id="trade-names"' in html
    response = client.post(reverse("signup"), {
        "display_name": "Nadir", "password1": PASSWORD, "password2": PASSWORD, "phone": "0555123456",
        "wilaya": Wilaya.objects.get(code=13).pk, "trades": [Trade.objects.get(slug="copperware").pk],
    })
    assert response.status_code == 302
    assert User.objects.get(phone="213555123456").username == "nadir"
