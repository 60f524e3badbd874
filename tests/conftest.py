from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    if os.environ.get("CI") == "true":
        return


@pytest.fixture(autouse=True)
def _reset_rate_limits():
    from rooms.services import send_buckets

    send_buckets.reset()
    yield
    send_buckets.reset()
