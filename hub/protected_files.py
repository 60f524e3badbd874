"""Files that only a permission check may hand out: message images, card photos, replays.

The view checks who asks; then, behind nginx (`HIRFA_ACCEL_REDIRECT=1`), it answers with an
empty response whose `X-Accel-Redirect` names an `internal` nginx location, and nginx
sends the file (deploy/nginx.conf): no Python process streams bytes, and a client that
asks the internal location itself gets 404. The embedded hub has no nginx, so Django
streams the file itself. Either way the answer is `Cache-Control: private`: no shared
cache keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase


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


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


def _chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as file:
        file.seek(start)
        while length > 0:
            data = file.read(min(_CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data


def ranged_file_response(
    request: HttpRequest, *, path: Path, root: Path, internal_prefix: str, content_type: str
) -> HttpResponseBase:
    """`path` (a file under `root`) for a caller whose right to it the view has checked,
    with HTTP range requests (RFC 9110: one range; `416` for one past the end), so a
    player seeks in a long video without downloading it.

    Behind nginx (`HIRFA_ACCEL_REDIRECT=1`) nginx answers the range itself from the
    `internal_prefix` location mapping onto `root`. Always `Cache-Control: private`.
    Raises `FileNotFoundError` when the file is missing.
    """
    size = path.stat().st_size
    response: HttpResponseBase
    if settings.HIRFA_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = internal_prefix.rstrip("/") + "/" + quote(str(path.relative_to(root)))
    else:
        match = _RANGE.match(request.headers.get("Range", "").strip())
        if match is None or not (match[1] or match[2]):
            response = StreamingHttpResponse(_chunks(path, 0, size), content_type=content_type)
            response["Content-Length"] = str(size)
        else:
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:  # the last N bytes
                start = max(0, size - int(match[2]))
                end = size - 1
            if start >= size or start > end:
                response = HttpResponse(status=416)
                response["Content-Range"] = f"bytes */{size}"
            else:
                response = StreamingHttpResponse(
                    _chunks(path, start, end - start + 1), status=206, content_type=content_type
                )
                response["Content-Length"] = str(end - start + 1)
                response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
