"""The registry's tests: the cast is the suite's (tests/factories.py), on the reference
wilayas — Amina, a potter of Tlemcen (13); Karim, who moderates Tlemcen; Omar, who moderates
Oran (31), not Tlemcen; Yacine, a potter of Oran; Sofia, a weaver of Alger (16), far from
Tlemcen; Leila, the admin."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from hub.models import Wilaya
from tests import reference_data as reference_data_


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def reference_data(db):
    """The 58 wilayas (with neighbours) and the trades, put back if a flush removed them."""
    reference_data_.restore()


def wilaya(code: int) -> Wilaya:
    return Wilaya.objects.get(code=code)


@pytest.fixture
def tlemcen(reference_data):
    return wilaya(13)


@pytest.fixture
def oran(reference_data):
    return wilaya(31)


@pytest.fixture
def alger(reference_data):
    return wilaya(16)


def jpeg(width: int = 64, height: int = 48, color: str = "sienna") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` × `height`: a decompression bomb's shape."""
    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    ihdr = 8 + 4
    struct.pack_into(">II", data, ihdr + 4, width, height)
    struct.pack_into(">I", data, ihdr + 4 + 13, zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13])))
    return bytes(data)
