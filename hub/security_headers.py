"""Security headers on every response: a strict Content-Security-Policy and a Permissions-Policy.

The policy allows scripts, styles, images and sockets from the hub's own origin only:
no inline script, no inline event handler, no `style=""` attribute, no `eval`.
Pages pass data to their ES modules in `<script type="application/json">` blocks
(`json_script`), which a browser never runs. `tests/hub/test_security_headers.py`
scans every template so that nothing inline comes back.

HSTS and the HTTPS redirect are Django's own (`SECURE_HSTS_SECONDS`,
`SECURE_SSL_REDIRECT`), switched on in production by `hub/settings.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # data: for tiny generated images, blob: for previews of a file being attached.
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        # 'self' covers ws:/wss: to the same host in CSP 3 browsers; the explicit schemes
        # keep older WebViews (still common on the artisans' phones) working.
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()"


class SecurityHeadersMiddleware:
    """Adds the CSP and Permissions-Policy headers unless a view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = getattr(settings, "HIRFA_CONTENT_SECURITY_POLICY", CONTENT_SECURITY_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
