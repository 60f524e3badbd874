"""A big meeting on several ``hirfa sfu`` workers: who holds a part of which meeting.

Placement (`signaling.placement.link_for`) sends a new participant of a meeting whose
worker is loaded (``HIRFA_SFU_SPREAD_LOAD`` participants or more) to the least loaded
worker instead. Each worker holding a part of a meeting writes its pipe address into the
Redis hash ``hirfa:sfu:meeting:<id>`` (`signaling.placement.RedisPeerBus`) and tells the others
(:class:`~signaling.messages.PipeOpen`, on their channel ``sfu.<worker>`` as
``{"type": "sfu.peer", ...}``); each then pipes its own publishers' tracks to the other
and takes the other's (`signaling/sfu/pipe.py`), and sends its participants
(:class:`~signaling.messages.PartState`) so that every worker publishes the whole
meeting's state. A worker whose last participant of the meeting left removes itself and
says :class:`~signaling.messages.PipeClose`: the others stop piping to it. A host's act
on someone of another worker's part (mute, removal, admission or denial from its lobby), and
lock, lobby and end, reach that worker as :class:`~signaling.messages.PeerCommand`.
"""

from __future__ import annotations

from typing import Protocol

from signaling import messages as m

Address = tuple[str, int]


class PeerBus(Protocol):
    """How a worker's engine reaches the other workers of its meetings."""

    worker: str

    async def enter(self, meeting_id: int, address: Address) -> dict[str, Address]:
        """Note that this worker holds a part of ``meeting_id`` (its pipe at ``address``);
        answers the other live workers holding parts of it, and their pipe addresses."""

    async def leave(self, meeting_id: int) -> None:
        """This worker holds nobody of ``meeting_id`` any more."""

    async def send(self, worker: str, message: m.PeerMessage) -> None:
        """Hand ``message`` to ``worker`` (best effort)."""
