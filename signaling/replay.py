"""The replay of a recording: one playable file built from the tracks the SFU wrote.

The SFU writes each participant's tracks as they were sent (``signaling/sfu/recorder.py``)
with, per session, a manifest: the segments (file, participant, source, start, end) and
the speaker timeline. The job worker builds from them, with Debian's ffmpeg:

* ``replay.webm`` — the video of who speaks (his screen when he shares one, else his
  camera; when nobody speaks, the last speaker stays; before anyone spoke, the first
  picture there is), 640×360 at 15 fps, VP8, with everyone's audio mixed (Opus);
* ``replay-audio.ogg`` — the same mixed audio alone, Opus at 24 kbit/s mono, for members
  on a slow link.

Everything here is plain functions over files: `recording_plan` reads the manifests,
`ffmpeg_arguments` writes the command, `replay_build` runs it within a time and size
budget, reporting progress.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

VIDEO_FILE = "replay.webm"
AUDIO_FILE = "replay-audio.ogg"
WIDTH, HEIGHT, FPS = 640, 360, 15
BACKGROUND = "0x2b2118"
FFMPEG = os.environ.get("HIRFA_FFMPEG", "/usr/bin/ffmpeg")


class ReplayError(Exception):
    """The replay could not be built; the message says why (for the admins)."""


@dataclass(frozen=True)
class Track:
    """One segment file placed on the recording's timeline (seconds)."""

    path: Path
    participant: str
    source: str
    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class Shown:
    """The video track shown from ``start`` to ``end`` (an index into ``Plan.video``)."""

    start: float
    end: float
    video: int


@dataclass(frozen=True)
class Plan:
    duration: float
    video: tuple[Track, ...]
    audio: tuple[Track, ...]
    shown: tuple[Shown, ...]
    participants: frozenset[str]
    complete: bool


def _manifests(directory: Path) -> list[dict]:  # type: ignore[type-arg]
    manifests = []
    for path in sorted(directory.glob("session-*.json")):
        try:
            manifests.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("unreadable manifest %s", path)
    return manifests


def recording_plan(directory: Path, *, excluded: frozenset[str] = frozenset()) -> Plan:
    """What the replay shows and mixes, from the manifests in ``directory``.

    Segments whose file is gone (a member's account deleted) or whose participant is in
    ``excluded`` are left out; the timeline of several sessions (the meeting moved to
    another SFU worker) is laid out by their wall-clock start.
    """
    manifests = _manifests(directory)
    if not manifests:
        raise ReplayError(f"no manifest in {directory}")
    origin = min(float(m["started_at"]) for m in manifests)
    video: list[Track] = []
    audio: list[Track] = []
    speakers: list[tuple[float, str | None]] = []
    duration = 0.0
    for manifest in manifests:
        offset = float(manifest["started_at"]) - origin
        duration = max(duration, offset + float(manifest.get("duration") or 0.0))
        for at, who in manifest.get("speakers", []):
            speakers.append((offset + float(at), who if who not in excluded else None))
        for segment in manifest.get("segments", []):
            path = directory / segment["file"]
            if segment["participant"] in excluded or segment.get("start") is None or not path.exists():
                continue
            track = Track(
                path=path,
                participant=str(segment["participant"]),
                source=str(segment["source"]),
                kind=str(segment["kind"]),
                start=offset + float(segment["start"]),
                end=offset + float(segment.get("end") or segment["start"]),
            )
            duration = max(duration, track.end)
            (video if track.kind == "video" else audio).append(track)
    speakers.sort(key=lambda item: item[0])
    return Plan(
        duration=round(duration, 3),
        video=tuple(video),
        audio=tuple(audio),
        shown=_shown(video, speakers, duration),
        participants=frozenset(t.participant for t in (*video, *audio)),
        complete=all(m.get("complete") for m in manifests),
    )


#: Of the speaker's videos, which the replay shows (lower first).
_SHOWN_FIRST = {"screen": 0, "camera2": 1}


def _shown(video: list[Track], speakers: list[tuple[float, str | None]], duration: float) -> tuple[Shown, ...]:
    """Which video is on screen when: the speaker's (his screen first, then his second camera —
    a masterclass presenter's hands —, then his face), else what was shown."""
    cuts = sorted({0.0, duration, *(t.start for t in video), *(t.end for t in video), *(a for a, _ in speakers)})
    shown: list[Shown] = []
    speaker: str | None = None
    current: int | None = None
    speaker_index = 0
    for start, end in itertools.pairwise(cuts):
        if end <= start:
            continue
        while speaker_index < len(speakers) and speakers[speaker_index][0] <= start:
            who = speakers[speaker_index][1]
            if who is not None:
                speaker = who  # nobody speaking keeps the last speaker on screen
            speaker_index += 1
        live = [i for i, t in enumerate(video) if t.start <= start and t.end >= end - 0.001]
        mine = [i for i in live if video[i].participant == speaker]
        choice: int | None
        if mine:
            choice = min(mine, key=lambda i: _SHOWN_FIRST.get(video[i].source, len(_SHOWN_FIRST)))
        elif current in live:
            choice = current
        else:
            choice = live[0] if live else None
        current = choice
        if choice is None:
            continue
        if shown and shown[-1].video == choice and abs(shown[-1].end - start) < 0.001:
            shown[-1] = Shown(shown[-1].start, end, choice)
        else:
            shown.append(Shown(start, end, choice))
    return tuple(shown)


def ffmpeg_arguments(plan: Plan, *, video_out: Path, audio_out: Path, max_bytes: int) -> list[str]:
    """The ffmpeg command building both files from ``plan``."""
    args = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"]
    used_video = sorted({s.video for s in plan.shown})
    for index in used_video:
        args += ["-i", str(plan.video[index].path)]
    for track in plan.audio:
        args += ["-i", str(track.path)]
    duration = f"{plan.duration:.3f}"
    graph = [f"color=c={BACKGROUND}:s={WIDTH}x{HEIGHT}:r={FPS}:d={duration}[base0]"]
    last = "base0"
    for position, index in enumerate(used_video):
        track = plan.video[index]
        windows = "+".join(f"between(t,{s.start:.3f},{s.end:.3f})" for s in plan.shown if s.video == index)
        graph.append(
            f"[{position}:v]setpts=PTS-STARTPTS+{track.start:.3f}/TB,"
            f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease,"
            f"pad={WIDTH}:{HEIGHT}:-1:-1:color={BACKGROUND},setsar=1,fps={FPS}[v{position}]"
        )
        graph.append(f"[{last}][v{position}]overlay=eof_action=pass:enable='{windows}'[base{position + 1}]")
        last = f"base{position + 1}"
    audio_inputs = []
    for position, track in enumerate(plan.audio):
        input_index = len(used_video) + position
        delay = round(track.start * 1000)
        graph.append(
            f"[{input_index}:a]aresample=48000:async=1:first_pts=0,"
            f"adelay=delays={delay}:all=1[a{position}]"
        )
        audio_inputs.append(f"[a{position}]")
    if audio_inputs:
        graph.append(
            "".join(audio_inputs)
            + f"amix=inputs={len(audio_inputs)}:duration=longest:normalize=0,apad,"
            + f"atrim=0:{duration},asplit=2[mix][mixlow]"
        )
    else:
        graph.append(f"anullsrc=r=48000:cl=mono:d={duration},asplit=2[mix][mixlow]")
    graph.append(f"[{last}]trim=0:{duration}[video]")
    args += ["-filter_complex", ";".join(graph)]
    args += [
        "-map", "[video]", "-map", "[mix]",
        "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "450k",
        "-g", str(FPS * 4), "-auto-alt-ref", "0", "-lag-in-frames", "0", "-threads", "2",
        "-c:a", "libopus", "-b:a", "64k",
        "-t", duration, "-fs", str(max_bytes), "-f", "webm", str(video_out),
        "-map", "[mixlow]",
        "-c:a", "libopus", "-b:a", "24k", "-ac", "1", "-application", "voip",
        "-t", duration, "-fs", str(max_bytes), "-f", "ogg", str(audio_out),
    ]  # fmt: skip
    return args


@dataclass(frozen=True)
class BuiltReplay:
    duration: float
    video_bytes: int
    audio_bytes: int
    participants: frozenset[str]


def replay_build(
    directory: Path,
    *,
    max_seconds: float,
    max_bytes: int,
    excluded: frozenset[str] = frozenset(),
    on_progress: Callable[[int], None] = lambda percent: None,
) -> BuiltReplay:
    """Build ``replay.webm`` and ``replay-audio.ogg`` in ``directory``.

    Raises :class:`ReplayError` when there is nothing to build, ffmpeg fails, or the
    build passes ``max_seconds`` (ffmpeg is killed) or ``max_bytes`` (a file would be
    larger); the previous replay files, if any, are left as they were. ``on_progress``
    gets the percent done, at most once per percent.
    """
    plan = recording_plan(directory, excluded=excluded)
    if plan.duration <= 0 or not (plan.video or plan.audio):
        raise ReplayError("nothing was recorded")
    video_tmp = directory / f".{VIDEO_FILE}.part"
    audio_tmp = directory / f".{AUDIO_FILE}.part"
    args = ffmpeg_arguments(plan, video_out=video_tmp, audio_out=audio_tmp, max_bytes=max_bytes)
    deadline = time.monotonic() + max_seconds
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported = -1
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if time.monotonic() > deadline:
                process.kill()
                raise ReplayError(f"the build took longer than its budget of {max_seconds:.0f} s")
            if line.startswith("out_time_us="):
                try:
                    done = int(line.split("=", 1)[1]) / 1e6
                except ValueError:
                    continue
                percent = max(0, min(99, int(100 * done / plan.duration)))
                if percent > reported:
                    reported = percent
                    on_progress(percent)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            raise ReplayError(f"the build took longer than its budget of {max_seconds:.0f} s") from None
        errors = process.stderr.read() if process.stderr is not None else ""
        if process.returncode != 0:
            raise ReplayError(f"ffmpeg failed ({process.returncode}): {errors.strip()[-200:]}")
        for path in (video_tmp, audio_tmp):
            if path.stat().st_size >= max_bytes:
                raise ReplayError(f"the replay outgrew its budget of {max_bytes} bytes")
        os.replace(video_tmp, directory / VIDEO_FILE)
        os.replace(audio_tmp, directory / AUDIO_FILE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for path in (video_tmp, audio_tmp):
            path.unlink(missing_ok=True)
    on_progress(100)
    return BuiltReplay(
        duration=plan.duration,
        video_bytes=(directory / VIDEO_FILE).stat().st_size,
        audio_bytes=(directory / AUDIO_FILE).stat().st_size,
        participants=plan.participants,
    )
