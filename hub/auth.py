"""Who is making a request: the one place a view or API route turns `request.user`
into a member, so the `User | AnonymousUser` question is answered once."""

from __future__ import annotations

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
