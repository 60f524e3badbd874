"""ICE servers for meeting clients, with coturn's time-limited TURN credentials.

coturn's shared-secret scheme (``use-auth-secret`` / ``static-auth-secret``):
the username is ``<expiry unix time>:<user id>`` and the password is the
base64 HMAC-SHA1 of the username under the shared secret, so coturn checks
it without a database and it stops working at the expiry time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from django.conf import settings

from hub.protocol import IceServer


def turn_credential(*, secret: str, username: str) -> str:
    """The password coturn expects for ``username`` under ``secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(*, user_id: int, now: float | None = None) -> tuple[list[IceServer], int | None]:
    """The ICE servers for ``user_id`` and the lifetime of their credentials (s).

    STUN URLs come without credentials. TURN URLs are listed only when both
    ``HIRFA_TURN_URLS`` and ``HIRFA_TURN_SECRET`` are set; their credentials
    expire ``HIRFA_TURN_TTL_SECONDS`` from ``now``.
    """
    servers: list[IceServer] = []
    if settings.HIRFA_STUN_URLS:
        servers.append(IceServer(urls=list(settings.HIRFA_STUN_URLS)))
    if not (settings.HIRFA_TURN_URLS and settings.HIRFA_TURN_SECRET):
        return servers, None
    ttl = settings.HIRFA_TURN_TTL_SECONDS
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user_id}"
    servers.append(
        IceServer(
            urls=list(settings.HIRFA_TURN_URLS),
            username=username,
            credential=turn_credential(secret=settings.HIRFA_TURN_SECRET, username=username),
        )
    )
    return servers, ttl
