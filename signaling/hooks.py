"""What signaling plugs into the foundation, registered by `SignalingConfig.ready()`:
the ``hirfa sfu`` command, its part of a member's data (his meeting attendance, the
recordings he appears in, the chapters he set) and the recordings' retention sweep."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hub import cli, jobs, personal_data, sockets
from hub.models import User


def _export_attendance(user: User) -> dict[str, Any]:
    from signaling.models import Attendance

    return {
        "meeting_attendance": [
            {"meeting": a.meeting_id, "room": a.meeting.room_id, "joined_at": a.joined_at, "left_at": a.left_at}
            for a in Attendance.objects.filter(user=user).select_related("meeting").order_by("id")
        ]
    }


def _export_recordings(user: User) -> dict[str, Any]:
    from signaling.models import RecordingAppearance, RecordingMarker

    return {
        "recording_appearances": [
            {
                "recording": a.recording_id,
                "meeting": a.recording.meeting_id,
                "room": a.recording.meeting.room_id,
                "started_at": a.recording.started_at,
                "stopped_at": a.recording.stopped_at,
            }
            for a in RecordingAppearance.objects.filter(user=user).select_related("recording__meeting").order_by("id")
        ],
        "recording_chapters": [
            {"recording": m.recording_id, "at": m.at, "label": m.label, "created_at": m.created_at}
            for m in RecordingMarker.objects.filter(by=user).order_by("id")
        ],
    }


def _erase_recordings(user: User) -> None:
    """His camera and voice leave every recording: his track files and the built replays are
    deleted once the deletion commits, and each replay is built again without him."""
    from django.db import transaction

    from signaling.models import Recording, RecordingMarker, RecordingState

    RecordingMarker.objects.filter(by=user).delete()
    ids = list(Recording.objects.filter(appearances__user=user).values_list("pk", flat=True))
    if not ids:
        return
    Recording.objects.filter(pk__in=ids, stopped_at__isnull=False).update(state=RecordingState.BUILDING, progress=0)
    transaction.on_commit(lambda: _remove_from_recordings(str(user.pk), ids))


def _remove_from_recordings(participant: str, recording_ids: list[int]) -> None:
    import json

    from signaling.models import Recording, recording_directory
    from signaling.replay import AUDIO_FILE, VIDEO_FILE
    from signaling.tasks import recording_build

    for recording_id in recording_ids:
        directory = recording_directory(recording_id)
        for manifest in directory.glob("session-*.json"):
            try:
                segments = json.loads(manifest.read_text()).get("segments", [])
            except (OSError, ValueError):
                continue
            for segment in segments:
                if str(segment.get("participant")) == participant:
                    (directory / str(segment["file"])).unlink(missing_ok=True)
        for name in (VIDEO_FILE, AUDIO_FILE):
            (directory / name).unlink(missing_ok=True)
        if Recording.objects.filter(pk=recording_id, stopped_at__isnull=False).exists():
            recording_build.enqueue(recording_id=recording_id)


def _export(user: User) -> dict[str, Any]:
    return {**_export_attendance(user), **_export_recordings(user)}


def _sfu_configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=0, help="worker processes (default: one per core)")
    parser.add_argument("--worker-id", default=None, help="this worker's id (with --processes 1)")
    parser.add_argument(
        "--status",
        action="store_true",
        help="print each registered worker's health (alive, participants, UDP ports in use) and exit",
    )
    parser.add_argument(
        "--ops-port",
        type=int,
        default=int(os.environ.get("HIRFA_OPS_PORT", "0")),
        help="serve /healthz, /readyz and /metrics on this loopback port, the next ones for more "
        "processes (default: $HIRFA_OPS_PORT, 0: none)",
    )


def _sfu_run(args: argparse.Namespace) -> int:
    """Run SFU worker processes (one per core by default) until SIGTERM/SIGINT."""
    from django.conf import settings

    from signaling.worker import main as sfu_main

    if not settings.REDIS_URL:
        print("hirfa sfu: needs REDIS_URL (without it the hub runs the SFU in its own process)", file=sys.stderr)
        return 1
    if args.status:
        from signaling.worker import print_status

        return print_status()
    return sfu_main(
        processes=args.processes or (os.cpu_count() or 1), worker_id=args.worker_id, ops_port=args.ops_port
    )


def register() -> None:
    from signaling import liveness, placement
    from signaling.consumers import MeetingFrames
    from signaling.services import recordings_expire_job
    from signaling.tables import tables_close_lapsed_job

    sockets.part_register("meetings", MeetingFrames)
    # An embedded SFU must close with the process (and liveness knows how).
    placement.on_engine_created("liveness", liveness.hook_shutdown)
    cli.command_register(
        cli.CliCommand(
            name="sfu",
            help="run SFU worker processes for meetings (needs REDIS_URL)",
            configure=_sfu_configure,
            run=_sfu_run,
        )
    )
    personal_data.part_register(
        personal_data.PersonalDataPart(
            app="signaling",
            export=_export,
            exported=(
                "signaling.Attendance.user",
                "signaling.RecordingAppearance.user",
                "signaling.RecordingMarker.by",
            ),
            left_out={
                "signaling.Meeting.started_by": "the meeting belongs to its room",
                "signaling.Recording.started_by": "the recording belongs to its meeting (set to nobody)",
            },
            erase=_erase_recordings,
        )
    )
    jobs.periodic_register(recordings_expire_job)
    jobs.periodic_register(tables_close_lapsed_job)
