"""Personas for the registry's tests.

- amina: a potter of Tlemcen (13), speaks Arabic and French;
- karim: a moderator of the wilaya of Tlemcen;
- omar: a moderator of the wilaya of Oran (31), not of Tlemcen;
- yacine: a potter of Oran;
- sofia: a weaver of Alger (16), far from Tlemcen;
- nadia: the admin.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib

import pytest
from django.apps import apps as django_apps
from PIL import Image

from hub.models import User, Wilaya
from tests.factories import artisan, moderator_of, trade

_LOADERS = ("hub.migrations.0002_wilayas", "hub.migrations.0003_trades")



@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def reference_data(db):
    """The 58 wilayas (with neighbours) and the trades, put back if a flush removed them."""
    if Wilaya.objects.filter(code__lte=58).count() < 58:
        for name in _LOADERS:
            importlib.import_module(name).load(django_apps, None)


def wilaya(code: int) -> Wilaya:
    return Wilaya.objects.get(code=code)


@pytest.fixture
def poterie(db):
    return trade()


@pytest.fixture
def tissage(db):
    return trade("tissage-test", "Tissage", "النسيج")


@pytest.fixture
def amina(reference_data, poterie):
    user = artisan("amina", trades=[poterie], wilaya_=wilaya(13), display_name="Amina Belkacem")
    user.profile.languages = ["ar", "fr"]
    user.profile.bio = "Poterie berbère de Nedroma, فخار تقليدي"
    user.profile.save()
    return user


@pytest.fixture
def karim(reference_data):
    return moderator_of(artisan("karim", wilaya_=wilaya(13)), wilaya_=wilaya(13))


@pytest.fixture
def omar(reference_data):
    return moderator_of(artisan("omar", wilaya_=wilaya(31)), wilaya_=wilaya(31))


@pytest.fixture
def yacine(reference_data, poterie):
    user = artisan("yacine", trades=[poterie], wilaya_=wilaya(31), display_name="Yacine Haddad")
    user.profile.languages = ["fr"]
    user.profile.save()
    return user


@pytest.fixture
def sofia(reference_data, tissage):
    user = artisan("sofia", trades=[tissage], wilaya_=wilaya(16), display_name="صوفيا النساجة")
    user.profile.languages = ["ar", "ber"]
    user.profile.save()
    return user


@pytest.fixture
def nadia(db):
    return User.objects.create_superuser("nadia", "nadia@example.org", "a-long-test-passphrase")


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
