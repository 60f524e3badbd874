"""Validate an uploaded image and re-encode it safely: one helper for avatars and attachments.

Guarantees of `validate_and_resize_image`:

- only JPEG, PNG, WebP and GIF (its first frame) are accepted, recognised by
  their content, never by the file name or the client's content type;
- the byte size is checked before decoding, and the pixel count is checked
  from the header before any pixel is decoded, so a decompression bomb is
  refused without allocating its memory;
- the result is re-encoded from the decoded pixels: EXIF and every other
  metadata block is dropped, and the EXIF orientation is applied first so the
  picture shows the right way up;
- the image fits in `max_side` and its thumbnail in `thumbnail_side`.

Every refusal is a `HirfaError`: `invalid` for what is not a supported image,
`too_long` for what is too large, with a message for people.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from hub.errors import ErrorCode, HirfaError

# Pillow format name -> (format to write, content type, file extension)
_OUTPUT = {
    "JPEG": ("JPEG", "image/jpeg", "jpg"),
    "PNG": ("PNG", "image/png", "png"),
    "WEBP": ("WEBP", "image/webp", "webp"),
    # The first frame only; animation is not kept.
    "GIF": ("PNG", "image/png", "png"),
}

Upload = bytes | IO[bytes]


@dataclass(frozen=True)
class ProcessedImage:
    """A re-encoded image and its thumbnail, both in `content_type`."""

    data: bytes
    thumbnail: bytes
    content_type: str
    extension: str
    width: int
    height: int
    thumbnail_width: int
    thumbnail_height: int

    @property
    def size(self) -> int:
        return len(self.data)


def read_bounded(
    upload: Upload, max_bytes: int, *, too_large: Callable[[int], HirfaError] | None = None
) -> bytes:
    """The bytes of `upload`, refused (`too_long`, `too_large`'s error) past `max_bytes`
    without reading further, or (`invalid`) when empty."""
    too_large = too_large or _too_many_bytes
    if isinstance(upload, (bytes, bytearray)):
        data = bytes(upload)
    else:
        declared = getattr(upload, "size", None)
        if isinstance(declared, int) and declared > max_bytes:
            raise too_large(max_bytes)
        if hasattr(upload, "seek"):
            upload.seek(0)
        data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data:
        raise HirfaError(ErrorCode.INVALID, _("The file is empty."))
    return data


def _too_many_bytes(max_bytes: int) -> HirfaError:
    return HirfaError(
        ErrorCode.TOO_LONG,
        _("The image is too large: at most %(mb).1f MB.") % {"mb": max_bytes / 1_000_000},
        max_bytes=max_bytes,
    )


def _too_many_pixels(max_pixels: int) -> HirfaError:
    return HirfaError(
        ErrorCode.TOO_LONG,
        _("The image has too many pixels: at most %(mp).0f megapixels.")
        % {"mp": max_pixels / 1_000_000},
        max_pixels=max_pixels,
    )


def _not_an_image() -> HirfaError:
    return HirfaError(
        ErrorCode.INVALID, _("This file is not a supported image (JPEG, PNG, WebP or GIF).")
    )


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=85)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _normalise_mode(image: Image.Image, fmt: str) -> Image.Image:
    if fmt == "JPEG":
        return image if image.mode == "RGB" else image.convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    wanted = "RGBA" if has_alpha else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def validate_and_resize_image(
    upload: Upload,
    *,
    max_bytes: int,
    max_pixels: int,
    max_side: int,
    thumbnail_side: int = 320,
) -> ProcessedImage:
    """Check `upload` and return it re-encoded, at most `max_side` on its longer side.

    `upload` is bytes or a binary file (a Django `UploadedFile` works; its
    declared size is checked before reading). Raises `HirfaError` (`invalid`
    or `too_long`) with a message for people; never lets a Pillow error out.
    """
    data = read_bounded(upload, max_bytes)
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit; ours is checked just below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = Image.open(io.BytesIO(data), formats=list(_OUTPUT))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _not_an_image() from exc

    with source:
        width, height = source.size
        if width < 1 or height < 1:
            raise _not_an_image()
        if width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        fmt, content_type, extension = _OUTPUT[source.format or ""]
        try:
            source.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                source.load()
            upright = ImageOps.exif_transpose(source)
            image = _normalise_mode(upright, fmt)
        except Image.DecompressionBombError as exc:
            raise _too_many_pixels(max_pixels) from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            # Truncated or corrupt pixel data behind a valid header.
            raise _not_an_image() from exc

    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    thumb = image.copy()
    thumb.thumbnail((thumbnail_side, thumbnail_side), Image.Resampling.LANCZOS)
    return ProcessedImage(
        data=_encode(image, fmt),
        thumbnail=_encode(thumb, fmt),
        content_type=content_type,
        extension=extension,
        width=image.width,
        height=image.height,
        thumbnail_width=thumb.width,
        thumbnail_height=thumb.height,
    )
