"""ICE servers for meeting clients, with coturn's time-limited TURN credentials.

coturn's shared-secret scheme (``use-auth-secret`` / ``static-auth-secret``):
the username is ``<expiry unix time>:<user id>:m<meeting id>`` and the password is the
base64 HMAC-SHA1 of the username under the shared secret, so coturn checks
it without a database and it stops working at the expiry time (coturn reads the
time before the first colon; the rest names whose and which meeting's credential
it is, in coturn's log too).

Credentials live at most an hour (`MAX_TTL_SECONDS`): a member who leaves or is
removed keeps a relay for that long at most. While he is in the meeting his socket
sends fresh ones before they expire (`renew_after`), and the page hands them to
its peer connection.
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


MAX_TTL_SECONDS = 3600


def credential_ttl() -> int:
    """The lifetime of TURN credentials: ``HIRFA_TURN_TTL_SECONDS``, at most an hour."""
    return max(60, min(int(settings.HIRFA_TURN_TTL_SECONDS), MAX_TTL_SECONDS))


def renew_after(ttl: int) -> float:
    """When a socket in a meeting sends fresh credentials: well before `ttl` runs out."""
    return max(30.0, ttl - max(60.0, ttl / 6))


def ice_servers(
    *, user_id: int, meeting_id: int, now: float | None = None
) -> tuple[list[IceServer], int | None]:
    """The ICE servers for ``user_id`` in ``meeting_id`` and the lifetime of their credentials (s).

    STUN URLs come without credentials. TURN URLs are listed only when both
    ``HIRFA_TURN_URLS`` and ``HIRFA_TURN_SECRET`` are set; their credentials
    expire `credential_ttl()` (at most an hour) from ``now``.
    """
    servers: list[IceServer] = []
    if settings.HIRFA_STUN_URLS:
        servers.append(IceServer(urls=list(settings.HIRFA_STUN_URLS)))
    if not (settings.HIRFA_TURN_URLS and settings.HIRFA_TURN_SECRET):
        return servers, None
    ttl = credential_ttl()
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user_id}:m{meeting_id}"
    servers.append(
        IceServer(
            urls=list(settings.HIRFA_TURN_URLS),
            username=username,
            credential=turn_credential(secret=settings.HIRFA_TURN_SECRET, username=username),
        )
    )
    return servers, ttl
