"""hub.redis_client: one way to open Redis clients, whose pool waits rather than refuses."""

from __future__ import annotations

import asyncio
import os

from django.test import override_settings

from hub import redis_client
from tests.conftest import skip_or_fail


async def test_a_crowd_of_commands_waits_for_a_connection_instead_of_failing(monkeypatch) -> None:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("REDIS_URL is not set: no Redis to open clients on")
    monkeypatch.setattr(redis_client, "ASYNC_POOL_MAX", 4)
    with override_settings(REDIS_URL=url):
        client = redis_client.redis_client()
        try:
            # 300 commands at once on 4 connections: redis-py's own pool refused past its size.
            answers = await asyncio.gather(*(client.ping() for _ in range(300)))
            assert all(answers)
            pool = client.connection_pool
            assert pool.max_connections == 4
            assert len(pool._available_connections) + len(pool._in_use_connections) <= 4
        finally:
            await client.aclose()


def test_the_clients_parse_replies_with_hiredis() -> None:
    """redis-py parses replies in Python unless hiredis is installed: a storm's Redis
    pipelines (socket slots, presence) spent a tenth of the restarted hub's loop there
    (docs/performance.md, 2026-12-01)."""
    from redis._parsers import _AsyncHiredisParser

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):  # never connected
        client = redis_client.redis_client()
    assert isinstance(client.connection_pool.make_connection()._parser, _AsyncHiredisParser)
