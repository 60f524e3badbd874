from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from hub.errors import ErrorCode, HirfaError
from hub.images import ProcessedImage, validate_and_resize_image

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 24_000_000, "max_side": 1600}


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` × `height`: a decompression bomb's shape."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    # IHDR is the first chunk: 8-byte signature, length, "IHDR", then width and height.
    ihdr_start = 8 + 4
    struct.pack_into(">II", data, ihdr_start + 4, width, height)
    crc = zlib.crc32(bytes(data[ihdr_start : ihdr_start + 4 + 13]))
    struct.pack_into(">I", data, ihdr_start + 4 + 13, crc)
    return bytes(data)


def refused(upload, **limits) -> HirfaError:
    with pytest.raises(HirfaError) as info:
        validate_and_resize_image(upload, **{**LIMITS, **limits})
    assert info.value.message and info.value.message != info.value.code.value
    return info.value


def test_a_jpeg_is_reencoded_with_a_thumbnail():
    result = validate_and_resize_image(encode(Image.new("RGB", (800, 600), "orange"), "JPEG"), **LIMITS)
    assert isinstance(result, ProcessedImage)
    assert (result.content_type, result.extension) == ("image/jpeg", "jpg")
    assert (result.width, result.height) == (800, 600)
    thumb = Image.open(io.BytesIO(result.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) == 320
    assert (result.thumbnail_width, result.thumbnail_height) == thumb.size
    with pytest.raises(AttributeError):
        result.width = 1  # type: ignore[misc]


def test_a_large_image_is_resized_to_max_side():
    result = validate_and_resize_image(
        encode(Image.new("RGB", (3000, 1000), "blue"), "PNG"), **{**LIMITS, "max_side": 1000}
    )
    assert (result.width, result.height) == (1000, 333)
    assert Image.open(io.BytesIO(result.data)).size == (1000, 333)


def test_transparency_survives_in_png_and_webp():
    rgba = Image.new("RGBA", (50, 50), (255, 0, 0, 0))
    png = validate_and_resize_image(encode(rgba, "PNG"), **LIMITS)
    assert png.content_type == "image/png"
    assert Image.open(io.BytesIO(png.data)).mode == "RGBA"
    webp = validate_and_resize_image(encode(rgba, "WEBP"), **LIMITS)
    assert webp.content_type == "image/webp"


def test_a_gif_keeps_its_first_frame_as_png():
    frames = [Image.new("P", (30, 30), i) for i in (1, 2, 3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    result = validate_and_resize_image(gif.getvalue(), **LIMITS)
    assert result.content_type == "image/png"
    decoded = Image.open(io.BytesIO(result.data))
    assert decoded.format == "PNG" and getattr(decoded, "n_frames", 1) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"this is plain text, not an image",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"%PDF-1.4\n...",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature and garbage
    ],
)
def test_a_non_image_is_refused(payload):
    assert refused(payload).code == ErrorCode.INVALID


def test_an_empty_file_is_refused():
    assert refused(b"").code == ErrorCode.INVALID


def test_a_supported_format_is_judged_by_content_not_name():
    bmp = encode(Image.new("RGB", (10, 10)), "BMP")
    assert refused(SimpleUploadedFile("photo.jpg", bmp, "image/jpeg")).code == ErrorCode.INVALID
    png = encode(Image.new("RGB", (10, 10)), "PNG")
    assert validate_and_resize_image(SimpleUploadedFile("x.jpg", png, "image/jpeg"), **LIMITS).content_type == "image/png"


def test_a_truncated_image_is_refused():
    data = encode(Image.effect_noise((400, 400), 50).convert("RGB"), "JPEG")
    assert refused(data[: len(data) // 2]).code == ErrorCode.INVALID


def test_too_many_bytes_is_refused_before_decoding():
    data = encode(Image.effect_noise((300, 300), 80).convert("RGB"), "PNG")
    error = refused(data, max_bytes=len(data) - 1)
    assert error.code == ErrorCode.TOO_LONG
    assert error.details["max_bytes"] == len(data) - 1
    # An upload's declared size is enough to refuse it.
    upload = SimpleUploadedFile("big.png", data, "image/png")
    assert refused(upload, max_bytes=100).code == ErrorCode.TOO_LONG


def test_too_many_pixels_is_refused_from_the_header():
    error = refused(png_claiming(6000, 6000))
    assert error.code == ErrorCode.TOO_LONG
    assert error.details["max_pixels"] == LIMITS["max_pixels"]


def test_a_decompression_bomb_beyond_pillows_limit_is_refused():
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 100
    assert refused(bomb).code == ErrorCode.TOO_LONG


def test_exif_orientation_is_applied_and_metadata_dropped():
    # Stored 40 wide, 20 high: red on the left, blue on the right.
    image = Image.new("RGB", (40, 20), "blue")
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    exif[0x010F] = "SecretCam"  # make
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6

    result = validate_and_resize_image(data, **LIMITS)
    assert (result.width, result.height) == (20, 40)
    upright = Image.open(io.BytesIO(result.data))
    assert upright.size == (20, 40)
    assert not upright.getexif()
    assert b"SecretCam" not in result.data and b"SecretCam" not in result.thumbnail
    # Rotated clockwise, the left (red) side is now on top.
    top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_exif_is_dropped_from_webp_and_png_too():
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    for fmt in ("WEBP", "PNG"):
        data = encode(Image.new("RGB", (30, 30), "green"), fmt, exif=exif.tobytes())
        assert b"SecretCam" in data, fmt
        result = validate_and_resize_image(data, **LIMITS)
        assert b"SecretCam" not in result.data, fmt
