"""Active speaker detection from audio levels.

Each forwarded audio frame contributes a loudness between 0 (silence) and 127
(full scale). With the RFC 6464 ``ssrc-audio-level`` header extension that is
``127 - level``; without it, the Opus frame size stands in (an Opus encoder
spends few bytes on silence), which tells speech from silence but not who is
louder. The speaker is the loudest participant over a sliding window, and the
title only changes hands when another participant is clearly louder, so it
does not flicker between two people talking at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Opus frames larger than this (bytes) count as speech when no level is sent.
_SPEECH_FRAME_BYTES = 40
# Loudness at or below which nobody is speaking (about -60 dBov).
_SILENCE = 127 - 60


class ActiveSpeakerDetector:
    """Tracks the loudest participant; ``on_change`` is called on each change."""

    def __init__(
        self,
        *,
        window: float = 1.0,
        switch_margin: float = 1.25,
        on_change: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._margin = switch_margin
        self._on_change = on_change
        self._clock = clock
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._current: str | None = None
        self._last_evaluation = 0.0
        #: participant -> when he was last heard above silence (the allocator's "recent speech").
        self.last_loud: dict[str, float] = {}

    @property
    def current(self) -> str | None:
        return self._current

    def observe(self, participant_id: str, level: int | None, frame_bytes: int) -> None:
        """Record one audio frame of ``participant_id``."""
        if level is not None:
            loudness = 127 - max(0, min(127, level))
        else:
            loudness = 127 if frame_bytes > _SPEECH_FRAME_BYTES else 0
        now = self._clock()
        self._samples.setdefault(participant_id, deque()).append((now, loudness))
        if now - self._last_evaluation >= 0.2:
            self._last_evaluation = now
            self.evaluate()

    def forget(self, participant_id: str) -> None:
        """Drop a participant who left or was muted."""
        self._samples.pop(participant_id, None)
        self.last_loud.pop(participant_id, None)
        if self._current == participant_id:
            self._set(None)
            self.evaluate()

    def scores(self) -> dict[str, float]:
        """Mean loudness per participant over the window (missing frames count as 0)."""
        cutoff = self._clock() - self._window
        result = {}
        for participant_id, samples in self._samples.items():
            while samples and samples[0][0] < cutoff:
                samples.popleft()
            result[participant_id] = (
                sum(value for _, value in samples) / max(len(samples), 1) if samples else 0.0
            )
        return result

    def evaluate(self) -> str | None:
        """Recompute the speaker now; answers the current one."""
        scores = self.scores()
        loud = {pid: score for pid, score in scores.items() if score > _SILENCE}
        now = self._clock()
        for pid in loud:
            self.last_loud[pid] = now
        if not loud:
            self._set(None)
            return None
        best = max(loud, key=lambda pid: loud[pid])
        current_score = loud.get(self._current or "", 0.0)
        if self._current not in loud or loud[best] > current_score * self._margin:
            self._set(best)
        return self._current

    def _set(self, participant_id: str | None) -> None:
        if participant_id != self._current:
            self._current = participant_id
            if self._on_change is not None:
                self._on_change(participant_id)
