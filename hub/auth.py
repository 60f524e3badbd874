"""Who is making a request: the one place a view or API route turns `request.user`
into a member, so the `User | AnonymousUser` question is answered once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from hub.models import User


def member_of(request: HttpRequest) -> User:
    """The signed-in member behind `request`.

    For views behind `login_required` and API routes behind session auth, which have
    already turned anonymous requests away; an anonymous request here is refused (403)
    rather than passed on as a half-user.
    """
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied
    return user


def viewer_of(request: HttpRequest) -> User | None:
    """The signed-in member behind `request`, or None for a visitor."""
    user = request.user
    return user if isinstance(user, User) and user.is_authenticated else None


def user_by_identifier(identifier: str) -> User | None:
    """The account `identifier` names: its username, else its e-mail (when only one account
    has it), else its phone number in any usual writing (0555 12 34 56, +213 555...)."""
    from hub.services import phone_normalise

    identifier = identifier.strip()
    if not identifier:
        return None
    user = User.objects.filter(username__iexact=identifier).first()
    if user is None and "@" in identifier:
        found = list(User.objects.filter(email__iexact=identifier)[:2])
        user = found[0] if len(found) == 1 else None
    if user is None and phone_normalise(identifier):
        user = User.objects.filter(phone=phone_normalise(identifier)).first()
    return user


class IdentifierBackend(ModelBackend):
    """Log in with a username, an e-mail or a phone number, and the password."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None or password is None:
            return None
        user = user_by_identifier(username)
        if user is None:
            User().set_password(password)  # the same time whether the account exists or not
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
