"""Fixtures for the hub's tests: the reference data, whatever ran before."""

from __future__ import annotations

import pytest

from tests import reference_data as reference_data_

# The meeting fixtures, for the revocation tests that end a member's meeting session.
from tests.signaling.conftest import close_sfu_after, embedded_sfu  # noqa: F401


@pytest.fixture
def reference_data(db):
    """The wilayas and trades of the data migrations.

    A transactional test elsewhere in the run flushes the tables; the data
    migrations' own loaders (idempotent) put the rows back when that happened.
    """
    reference_data_.restore()


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
