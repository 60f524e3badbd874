"""Throttled accounts: log-in and admin log-in (django-axes), sign-up and password reset."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from hub.models import User
from tests.hub.test_views import PASSWORD, signup_data

pytestmark = pytest.mark.usefixtures("reference_data")


@pytest.fixture(autouse=True)
def real_limits(settings):
    settings.AXES_FAILURE_LIMIT = 10
    settings.HIRFA_SIGNUPS_PER_IP_HOUR = 5
    settings.HIRFA_RESETS_PER_IP_HOUR = 10
    settings.HIRFA_RESET_MAILS_PER_ACCOUNT_HOUR = 3


def from_address() -> Client:
    """A browser at an address of its own (the cache's counts outlive a test's transaction)."""
    n = uuid.uuid4().int
    return Client(REMOTE_ADDR=f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}", HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def amina(db):
    return User.objects.create_user(f"amina-{uuid.uuid4().hex[:6]}", f"{uuid.uuid4().hex[:8]}@example.org", PASSWORD)


def log_in(client: Client, username: str, password: str, url: str = "login"):
    return client.post(reverse(url), {"username": username, "password": password})


def test_forty_wrong_passwords_then_the_right_one_is_refused(amina):
    browser = from_address()
    answers = [log_in(browser, amina.username, f"wrong-{i}").status_code for i in range(40)]
    assert answers[:9] == [200] * 9  # the form again, with its error
    assert set(answers[9:]) == {429}  # the tenth failure locks
    right = log_in(browser, amina.username, PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in browser.session
    assert "Too many failed log-in attempts" in right.content.decode()


def test_an_account_is_locked_whatever_the_address(amina):
    for i in range(10):
        log_in(from_address(), amina.username, f"wrong-{i}")
    assert log_in(from_address(), amina.username, PASSWORD).status_code == 429


def test_an_address_is_locked_whatever_the_account(amina):
    browser = from_address()
    for i in range(10):
        log_in(browser, f"someone-{i}", "guess")
    assert log_in(browser, amina.username, PASSWORD).status_code == 429
    # Elsewhere, the account itself is fine.
    elsewhere = from_address()
    assert log_in(elsewhere, amina.username, PASSWORD).status_code == 302


def test_a_success_before_the_limit_clears_the_count(amina):
    browser = from_address()
    for i in range(9):
        log_in(browser, amina.username, f"wrong-{i}")
    assert log_in(browser, amina.username, PASSWORD).status_code == 302


def test_the_admin_log_in_is_locked_too(db):
    boss = User.objects.create_superuser(f"boss-{uuid.uuid4().hex[:6]}", "boss@example.org", PASSWORD)
    browser = from_address()
    for i in range(10):
        browser.post("/admin/login/", {"username": boss.username, "password": f"wrong-{i}"})
    answer = browser.post("/admin/login/", {"username": boss.username, "password": PASSWORD})
    assert answer.status_code == 429
    assert "_auth_user_id" not in browser.session


@pytest.mark.parametrize(
    "language, words",
    [
        ("ar", "محاولات"),
        ("fr", "Trop de tentatives de connexion"),
        ("en", "Too many failed log-in attempts"),
    ],
)
def test_the_lockout_speaks_the_three_languages(amina, language, words):
    browser = from_address()
    for i in range(11):
        answer = browser.post(
            reverse("login"), {"username": amina.username, "password": f"x{i}"}, HTTP_ACCEPT_LANGUAGE=language
        )
    assert answer.status_code == 429
    assert words in answer.content.decode()


def test_a_reset_cannot_flood_a_mailbox(amina):
    for _ in range(10):  # ten addresses, one victim
        answer = from_address().post(reverse("password_reset"), {"email": amina.email})
        assert answer["Location"] == reverse("password_reset_done")  # the same answer every time
    assert len(mail.outbox) == 3
    assert {m.to[0] for m in mail.outbox} == {amina.email}


def test_resets_from_one_address_are_throttled(amina):
    browser = from_address()
    for i in range(10):
        assert browser.post(reverse("password_reset"), {"email": f"n{i}@example.org"}).status_code == 302
    answer = browser.post(reverse("password_reset"), {"email": amina.email})
    assert answer.status_code == 429
    assert "Too many password reset requests" in answer.content.decode()
    assert mail.outbox == []


def test_sign_ups_from_one_address_are_throttled(db):
    browser = from_address()
    for i in range(5):
        answer = browser.post(
            reverse("signup"), signup_data(username=f"artisan{i}-{uuid.uuid4().hex[:4]}", email=f"a{i}-{uuid.uuid4().hex[:6]}@example.org")
        )
        assert answer.status_code == 302, answer.content.decode()[:500]
        browser.logout()
    answer = browser.post(reverse("signup"), signup_data(username="one-more", email="one-more@example.org"))
    assert answer.status_code == 429
    assert "Too many accounts were created" in answer.content.decode()
    assert not User.objects.filter(username="one-more").exists()
