from __future__ import annotations

import pytest

from tests.servers import daphne_factory  # noqa: F401


@pytest.fixture
def embedded_sfu(settings):
    """Meetings on the in-process SFU (whatever REDIS_URL says), closed after the test."""
    settings.HIRFA_SFU_PLACEMENT = "embedded"
    yield


@pytest.fixture
async def close_sfu_after():
    from signaling import placement

    yield
    await placement.close_embedded()
