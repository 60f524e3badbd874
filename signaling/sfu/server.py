"""The SFU of one process: a registry of meetings."""

from __future__ import annotations

from . import aiortc_hooks
from .config import SfuConfig
from .meeting import Meeting
from .pipe import Address, PipeEndpoint
from .types import InvalidSfuState, UnknownMeeting, VideoCodec


class Sfu:
    """Holds the meetings forwarded by this process.

    Guarantees that :meth:`close` leaves no peer connection, task or socket
    behind and that no meeting can be opened afterwards.
    """

    def __init__(self, config: SfuConfig | None = None) -> None:
        self.config = config or SfuConfig()
        self._meetings: dict[str, Meeting] = {}
        self._closed = False
        self._pipes: PipeEndpoint | None = None

    async def pipe_endpoint(self) -> PipeEndpoint:
        """This process's UDP endpoint for pipes to and from other workers (`.pipe`), bound
        on first use to ``pipe_address`` and ``pipe_port`` (0: any free port)."""
        if self._closed:
            raise InvalidSfuState("the SFU is closed")
        if self._pipes is None:
            endpoint = PipeEndpoint()
            self._pipes = endpoint
            await endpoint.start(self.config.pipe_address, self.config.pipe_port)
        return self._pipes

    def pipe_endpoint_now(self) -> PipeEndpoint | None:
        """The pipe endpoint if it was started (`pipe_endpoint`)."""
        return self._pipes

    @property
    def pipe_address(self) -> Address | None:
        """Where other workers send this one's pipes, once the endpoint is started."""
        return self._pipes.address if self._pipes is not None and self._pipes.address[1] else None

    def meeting(self, meeting_id: str, *, video_codec: VideoCodec | None = None) -> Meeting:
        """The meeting ``meeting_id``, opened on first use with ``video_codec``.

        Raises :class:`InvalidSfuState` if the meeting exists with another codec
        or the SFU is closed.
        """
        if self._closed:
            raise InvalidSfuState(f"cannot open meeting {meeting_id!r}: the SFU is closed")
        existing = self._meetings.get(meeting_id)
        if existing is not None:
            if video_codec is not None and video_codec is not existing.video_codec:
                raise InvalidSfuState(
                    f"meeting {meeting_id!r} uses {existing.video_codec.value}, "
                    f"not {video_codec.value}"
                )
            return existing
        meeting = Meeting(
            meeting_id=meeting_id,
            config=self.config,
            video_codec=video_codec or self.config.default_video_codec,
        )
        self._meetings[meeting_id] = meeting
        return meeting

    def get_meeting(self, meeting_id: str) -> Meeting:
        try:
            return self._meetings[meeting_id]
        except KeyError:
            raise UnknownMeeting(f"no meeting {meeting_id!r} on this SFU") from None

    def meetings(self) -> tuple[Meeting, ...]:
        return tuple(self._meetings.values())

    @staticmethod
    def ports_in_use() -> int:
        """UDP media ports held open by the peers of this process (a worker runs one SFU;
        the embedded default one per event loop, counted together)."""
        return aiortc_hooks.ports_in_use()

    @staticmethod
    def stale_media_dropped() -> int:
        """Media datagrams dropped unread by this process because they waited too long in a
        media socket (a starved loop came back late; ``aiortc_hooks.ice.MEDIA_MAX_AGE``)."""
        return aiortc_hooks.stale_media_dropped()

    async def close_meeting(self, meeting_id: str) -> None:
        """Close a meeting and every peer connection in it."""
        meeting = self.get_meeting(meeting_id)
        del self._meetings[meeting_id]
        await meeting.close()

    async def close(self) -> None:
        """Shut down: close every meeting."""
        self._closed = True
        for meeting_id in list(self._meetings):
            await self.close_meeting(meeting_id)
        if self._pipes is not None:
            await self._pipes.close()
            self._pipes = None
