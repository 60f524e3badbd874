"""What the hub socket offers the frames of the apps above it, and how they plug in.

The socket (`hub.consumers.HubConsumer`) owns the connection: the handshake, the frame
budget, decoding, the bounded outbox, the bus groups and revocation. What a frame
*means* lives with the app it belongs to, in a *part* built on the small `Socket`
interface below (`rooms.consumers.RoomFrames`, `signaling.consumers.MeetingFrames`).
Each app registers its part from its `AppConfig.ready()` with `part_register`, so the
foundation imports nothing above it, and each part is tested alone against a fake
socket (`tests/sockets.py`, `FakeSocket`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hub.models import User
    from hub.protocol import ServerFrame
    from hub.realtime import Event

#: Handles one validated client frame (a `hub.protocol` model); a refusal is a `HirfaError`.
FrameHandler = Callable[[Any], Awaitable[None]]
#: Handles one channel-layer message sent to the socket's `reply_channel`.
ChannelHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Socket(Protocol):
    """One member's open socket, as a part sees it."""

    @property
    def user(self) -> User:
        """The authenticated member (parts only exist once he is)."""

    @property
    def conn_id(self) -> str:
        """This socket's id, unique in the deployment (presence counts sockets by it)."""

    async def open_reply_channel(self) -> str:
        """Where the channel layer reaches this socket (`channel_handlers`), or a local address
        without a layer: opened on first use (a socket that never asks has no channel)."""

    @property
    def protocol_version(self) -> int:
        """The protocol version the client said hello with."""

    def emit(self, frame: ServerFrame) -> None:
        """Write a frame to the client (through the outbox; never blocks)."""

    def push(self, text: str) -> None:
        """Write an already-encoded frame to the client (never blocks)."""

    def push_many(self, texts: Sequence[str]) -> None:
        """Write already-encoded frames to the client in this order, in one write to the kernel
        when the socket allows it (a replay batch); never blocks."""

    async def join_group(self, group: str) -> None:
        """Receive the bus's events of `group` (`SocketPart.deliver`); when this returns, every
        later event does."""

    def lanes_changed(self, group: str | None = None) -> None:
        """A part's `SocketPart.plain` answer for `group` (None: any) may have changed: the
        socket asks its parts again. Call it in the same step as the change, before any
        live event can arrive."""

    async def leave_group(self, group: str) -> None:
        """Stop receiving the events of `group`."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the frames; it is cancelled when the socket closes."""

    async def display_name(self) -> str:
        """The member's display name (read once per socket)."""


class SocketPart:
    """The frames of one app on one socket. Subclasses override what they need."""

    def handlers(self) -> Mapping[str, FrameHandler]:
        """The client frame types this part answers, each with its handler (built once per socket)."""
        return {}

    def channel_handlers(self) -> Mapping[str, ChannelHandler]:
        """The channel-layer message types this part takes (e.g. ``sfu.event``)."""
        return {}

    def frame_limits(self) -> Mapping[str, int]:
        """Frame types allowed to be larger than ``HIRFA_FRAME_MAX_BYTES``, with their limit."""
        return {}

    def deliver(self, group: str, event: Event) -> bool:
        """A live event of a group the socket joined; False keeps it from the client (held back,
        replaced, or not for him). Must not block."""
        return True

    def plain(self, group: str) -> bool:
        """Whether `deliver` would pass every live event of `group` now, unchanged, except
        those of `kinds_seen`: then the fan-out writes them to the socket without asking
        (`hub.realtime.Lane`). A part whose answer changes calls `Socket.lanes_changed` at
        once. By default: a part that keeps its own `deliver` is asked about every event."""
        return type(self).deliver is SocketPart.deliver

    def kinds_seen(self) -> Collection[str]:
        """The event kinds this part must see in `deliver` whatever `plain` says (asked as the
        socket joins a group, after the handshake)."""
        return ()

    def bus_resumed(self) -> None:
        """The bus was cut off and is back: events may have been lost."""

    async def recheck(self, room_id: int | None) -> None:
        """The member's rights changed (in one room, or anywhere): drop what he lost."""

    async def suspend(self) -> None:
        """The hub restarts (`hub.shutdown`) and the client will come back through another hub:
        let go of what lives on other services (a peer on an SFU worker) but keep what the
        member takes back on reconnecting (a meeting seat). `close` still follows."""

    async def close(self) -> None:
        """The socket closes: give back everything this part holds."""


PartFactory = Callable[[Socket], SocketPart]
_parts: dict[str, PartFactory] = {}


def part_register(name: str, factory: PartFactory) -> None:
    """Add (or replace) a part every new socket builds; call from `AppConfig.ready()`.

    Parts are built in registration order (the order of ``INSTALLED_APPS``), asked in that
    order on a rights change, and closed in the reverse order.
    """
    _parts[name] = factory


def part_factories() -> list[PartFactory]:
    return list(_parts.values())
