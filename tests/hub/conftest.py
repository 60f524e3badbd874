"""Fixtures for the hub's tests: the reference data, whatever ran before."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

# The meeting fixtures, for the revocation tests that end a member's meeting session.
from tests.signaling.conftest import close_sfu_after, embedded_sfu  # noqa: F401

_LOADERS = ("hub.migrations.0002_wilayas", "hub.migrations.0003_trades", "hub.migrations.0012_trade_icon")


@pytest.fixture
def reference_data(db):
    """The wilayas and trades of the data migrations.

    A transactional test elsewhere in the run flushes the tables; the data
    migrations' own loaders (idempotent) put the rows back when that happened.
    """
    from hub.models import Trade, Wilaya

    if Wilaya.objects.filter(code__lte=58).count() < 58 or not Trade.objects.exists():
        for name in _LOADERS:
            importlib.import_module(name).load(django_apps, None)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
