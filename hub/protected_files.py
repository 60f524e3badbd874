"""Files that only a permission check may hand out: message images, card photos.

The view checks who asks; then, behind nginx (`HIRFA_ACCEL_REDIRECT=1`), it answers with an
empty response whose `X-Accel-Redirect` names an `internal` nginx location, and nginx
sends the file (deploy/nginx.conf): no Python process streams bytes, and a client that
asks the internal location itself gets 404. The embedded hub has no nginx, so Django
streams the file itself. Either way the answer is `Cache-Control: private`: no shared
cache keeps it.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpResponse


def protected_file_response(
    file: FieldFile, *, internal_prefix: str, content_type: str, cache_control: str
) -> HttpResponse | FileResponse:
    """`file` for a caller whose right to it the view has checked.

    `internal_prefix` is the nginx internal location that maps onto `file`'s storage root.
    """
    response: HttpResponse | FileResponse
    if settings.HIRFA_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = internal_prefix.rstrip("/") + "/" + quote(file.name or "")
    else:
        response = FileResponse(file.open("rb"), content_type=content_type)
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response
