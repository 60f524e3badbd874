"""Throttles of the account pages: log-in (django-axes), sign-up and password reset.

Log-in, the admin's included, is counted by django-axes (settings `AXES_*`): after
`AXES_FAILURE_LIMIT` failures from one address, or on one account, further attempts are
refused for `AXES_COOLOFF_TIME`, the right password included, with `locked_out`'s page.
Sign-up and password reset are counted here, in fixed windows in the cache (Redis in
production, so every process shares the counts).

The client's address is REMOTE_ADDR: behind nginx, daphne runs with `--proxy-headers`
and nginx overwrites X-Forwarded-For, so a client cannot choose the address it is
counted under (deploy/).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


def client_ip(request: HttpRequest) -> str | None:
    """The address a request is counted under (django-axes' AXES_CLIENT_IP_CALLABLE too);
    None for a request that came from no socket (a test client's `force_login`)."""
    return request.META.get("REMOTE_ADDR") or None


def throttle_hit(scope: str, key: str, *, limit: int, window: timedelta) -> bool:
    """Count one attempt of `key` in `scope`; true when that makes more than `limit` in the window."""
    digest = hashlib.sha256(key.strip().lower().encode()).hexdigest()[:32]
    cache_key = f"hirfa:throttle:{scope}:{digest}"
    seconds = int(window.total_seconds())
    cache.add(cache_key, 0, timeout=seconds)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=seconds)
        count = 1
    return count > limit


def too_many(request: HttpRequest, message: str) -> HttpResponse:
    """The page that says an account action is refused for a while (HTTP 429)."""
    return render(request, "hub/throttled.html", {"message": message}, status=429)


def locked_out(request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None) -> HttpResponse:
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE), for the site's and the admin's log-in."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return too_many(
        request,
        _("Too many failed log-in attempts. Wait %(minutes)d minutes, then try again, or reset your password.")
        % {"minutes": minutes},
    )
