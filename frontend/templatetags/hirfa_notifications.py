"""`{% unread_notifications as n %}`: the member's unread count for the bell, the tab
and the page title (one COUNT query, only for a signed-in member)."""

from __future__ import annotations

from typing import Any

from django import template

from frontend import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context: dict[str, Any]) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    cache = getattr(request, "_hirfa_unread_notifications", None)
    if cache is None:
        cache = selectors.notifications_unread_count(user=user)
        request._hirfa_unread_notifications = cache  # type: ignore[union-attr]
    return int(cache)
