"""A ``hirfa sfu`` worker's replies to the sockets over Redis (signaling/worker.py)."""

from __future__ import annotations

import pytest
import redis.exceptions
from channels.exceptions import ChannelFull

from signaling import messages as m
from signaling.worker import reply_over_layer

JOINED = m.Joined(host=False, ref="r1", meeting=7)


class Layer:
    """A channel layer whose first ``failures`` sends raise ``error``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.attempts = 0
        self.sent: list[tuple[str, dict]] = []

    async def send(self, channel: str, message: dict) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.sent.append((channel, message))


@pytest.mark.parametrize(
    "error",
    [redis.exceptions.ConnectionError("Connection reset by peer"), redis.exceptions.TimeoutError("Timeout reading"),
     ConnectionResetError()],
)
async def test_a_reply_is_retried_through_a_transient_redis_error(error: Exception) -> None:
    layer = Layer(failures=3, error=error)
    await reply_over_layer(layer, "hub!amina", JOINED, pause=0)
    assert layer.attempts == 4
    assert layer.sent == [("hub!amina", {"type": "sfu.event", "event": JOINED.model_dump(mode="json")})]


async def test_a_reply_gives_up_after_three_retries() -> None:
    layer = Layer(failures=10, error=redis.exceptions.ConnectionError("down"))
    with pytest.raises(redis.exceptions.ConnectionError):
        await reply_over_layer(layer, "hub!amina", JOINED, pause=0)
    assert layer.attempts == 4 and not layer.sent


async def test_a_full_channel_is_not_retried() -> None:
    """A socket that reads nothing (gone, or stuck) fills its channel: the bus is best-effort."""
    layer = Layer(failures=1, error=ChannelFull())
    with pytest.raises(ChannelFull):
        await reply_over_layer(layer, "hub!amina", JOINED, pause=0)
    assert layer.attempts == 1
