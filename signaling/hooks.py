"""What signaling plugs into the foundation, registered by `SignalingConfig.ready()`:
the ``hirfa sfu`` command and its part of a member's data (his meeting attendance)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hub import cli, personal_data, sockets
from hub.models import User


def _export(user: User) -> dict[str, Any]:
    from signaling.models import Attendance

    return {
        "meeting_attendance": [
            {"meeting": a.meeting_id, "room": a.meeting.room_id, "joined_at": a.joined_at, "left_at": a.left_at}
            for a in Attendance.objects.filter(user=user).select_related("meeting").order_by("id")
        ]
    }


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
            exported=("signaling.Attendance.user",),
            left_out={"signaling.Meeting.started_by": "the meeting belongs to its room"},
        )
    )
