"""The typed seam between the workers of a spread meeting (signaling/spread.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.protocol import Author, MeetingParticipant
from signaling import messages as m


def test_peer_messages_cross_the_channel_layer_and_come_back_equal() -> None:
    for message in (
        m.PipeOpen(meeting=7, worker="w1", host="10.0.0.2", port=45000, key="ab" * 32),
        m.PipeOpen(meeting=7, worker="w1", host="10.0.0.2", port=45000),  # an older worker's: no key
        m.PeerCommand(
            meeting=7, worker="w1", command=m.Speak(meeting=7, room=2, user=4, reply_to="hub!a", target=3, allowed=True)
        ),
        m.PipeClose(meeting=7, worker="w1"),
        m.PartState(meeting=7, worker="w1", participants=[], waiting=[Author(id=3, name="Amina")]),
        m.PeerCommand(
            meeting=7, worker="w1", command=m.Remove(meeting=7, room=2, user=4, reply_to="hub!a", target=3)
        ),
        m.PeerCommand(meeting=7, worker="w1", command=m.End(meeting=7, room=2, user=4, reply_to="hub!a")),
    ):
        assert m.peer_message_from(message.model_dump(mode="json")) == message


def test_a_newer_workers_fields_are_ignored_in_a_peer_message() -> None:
    """Rolling deploys: a worker one version ahead may add fields, also inside the participants
    of its part's state; the older worker reads what it knows."""
    state = m.PartState(
        meeting=7, worker="w1", waiting=[Author(id=3, name="Amina")],
        participants=[MeetingParticipant(
            user=Author(id=4, name="Karim"), host=False, hand=False, tracks=["mic"], muted=[], host_muted=[],
            connected=True,
        )],
    )
    raw = state.model_dump(mode="json")
    raw["epoch"] = 2
    raw["participants"][0]["speaking"] = True
    raw["participants"][0]["user"]["avatar"] = "k.png"
    raw["waiting"][0]["avatar"] = "a.png"
    assert m.peer_message_from(raw) == state
    assert m.peer_message_from({"kind": "pipe_close", "meeting": 7, "worker": "w1", "extra": 1}) == m.PipeClose(
        meeting=7, worker="w1"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "pipe_open", "meeting": 7, "worker": "w1", "host": "10.0.0.2", "port": 0},
        {"kind": "pipe_open", "meeting": 7, "worker": "w1", "host": "", "port": 45000},
        # A pipe's key is 32 bytes, in hex.
        {"kind": "pipe_open", "meeting": 7, "worker": "w1", "host": "10.0.0.2", "port": 45000, "key": "ab"},
        {"kind": "pipe_open", "meeting": 7, "worker": "w1", "host": "10.0.0.2", "port": 45000, "key": "xy" * 32},
        {"kind": "pipe_close", "meeting": "seven", "worker": "w1"},
        {"kind": "part_state", "meeting": 7, "worker": "w1", "participants": [{"user": 3}]},
        {"kind": "explode", "meeting": 7, "worker": "w1"},
        # Only a host's acts cross: never a member's own command.
        {"kind": "command", "meeting": 7, "worker": "w1",
         "command": {"op": "leave", "meeting": 7, "room": 2, "user": 3, "reply_to": "hub!a"}},
        None,
    ],
)
def test_a_malformed_peer_message_is_refused(raw: object) -> None:
    with pytest.raises(ValidationError):
        m.peer_message_from(raw)
