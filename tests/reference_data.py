"""The reference data of the data migrations (wilayas, trades, their Tamazight and Tifinagh
names, the trades' icons), put back when a transactional test elsewhere in the run flushed
the tables: the migrations' own loaders are idempotent."""

from __future__ import annotations

import importlib

from django.apps import apps as django_apps

from hub.models import Trade, Wilaya

LOADERS = (
    "hub.migrations.0002_wilayas",
    "hub.migrations.0003_trades",
    "hub.migrations.0008_tifinagh_names",
    "hub.migrations.0012_trade_icon",
)


def restore() -> None:
    """Load the reference rows again unless all 58 wilayas and the trades are there."""
    if Wilaya.objects.filter(code__lte=58).count() < 58 or not Trade.objects.exists():
        for name in LOADERS:
            importlib.import_module(name).load(django_apps, None)
