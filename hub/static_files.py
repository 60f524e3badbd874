"""Static files: fingerprinted, compressed, and served by the hub itself (WhiteNoise).

With ``HIRFA_STATIC_FINGERPRINTS`` (on in production), ``collectstatic`` writes each file
under a name carrying a hash of its content (``room.3f9c0a1b2c4d.js``) beside a gzip and
a brotli copy, and a manifest that `static()` reads: a page names the hashed files, which
never change, so browsers and nginx keep them a year (``immutable``). ES modules import
each other by relative path; Django rewrites those imports to the hashed names only when
asked (`support_js_module_import_aggregation`), which is done here.

Without it (the embedded default, the tests) the apps' files are served as they are, fresh
from disk, so that an edit shows at the next reload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from asgiref.sync import markcoroutinefunction
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage


class FingerprintedStaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names, gzip and brotli copies, and relative ES module imports rewritten to
    the hashed names (``import { Hub } from "./socket.js";`` → ``"./socket.<hash>.js"``)."""

    support_js_module_import_aggregation = True


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise as an async middleware: the hub's stack is async, and a sync middleware
    would send every request, pages included, through a thread."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:  # type: ignore[override]
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        response = self.serve(static_file, request)
        if isinstance(request, ASGIRequest) and response.streaming and not response.is_async:  # type: ignore[attr-defined]
            # Handed to the server as an async iterator, as Django's own static handler does
            # (a sync one makes Django warn and read the whole file into a list).
            response.streaming_content = _chunks(response.streaming_content)  # type: ignore[attr-defined]
        return response


async def _chunks(content: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in content:
        yield chunk
