"""The job of recordings, run by the job worker (`hub/jobs.py`): building a replay once
its recording stops. (The retention sweep is `signaling.services.recordings_expire_job`.)"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import task

log = logging.getLogger(__name__)

#: How long a build waits for the SFU to finish writing (its manifests marked complete).
WAIT_FOR_SFU = timedelta(minutes=2)
RETRY_AFTER = timedelta(seconds=3)


@task()
def recording_build(*, recording_id: int) -> str:
    """Build the replay of a stopped recording (`signaling/replay.py`), with progress on the
    row, within its budget. Answers the state reached.

    Waits (re-enqueued) while the SFU still writes, at most `WAIT_FOR_SFU` after the stop;
    builds from what is there after that. Safe to run twice: a second run rebuilds.
    """
    from signaling.models import Recording, RecordingAppearance, RecordingState, recording_directory
    from signaling.replay import ReplayError, recording_plan, replay_build

    recording = Recording.objects.filter(pk=recording_id).first()
    if recording is None or recording.stopped_at is None:
        return "gone"
    directory = recording_directory(recording.pk)
    try:
        complete = recording_plan(directory).complete
    except ReplayError:
        complete = False
    if not complete and timezone.now() < recording.stopped_at + WAIT_FOR_SFU:
        recording_build.using(run_after=timezone.now() + RETRY_AFTER).enqueue(recording_id=recording_id)
        return "waiting"
    Recording.objects.filter(pk=recording_id).update(state=RecordingState.BUILDING, progress=0, error="")
    last = [0]

    def progress(percent: int) -> None:
        if percent >= last[0] + 5 or percent == 100:
            last[0] = percent
            Recording.objects.filter(pk=recording_id).update(progress=percent)

    duration = (recording.stopped_at - recording.started_at).total_seconds()
    try:
        built = replay_build(
            directory,
            max_seconds=60 + duration * settings.HIRFA_RECORDING_BUILD_SECONDS_PER_SECOND,
            max_bytes=settings.HIRFA_RECORDING_BUILD_MAX_BYTES,
            on_progress=progress,
        )
    except (ReplayError, OSError) as exc:
        log.warning("recording %s: the replay was not built: %s", recording_id, exc)
        Recording.objects.filter(pk=recording_id).update(state=RecordingState.FAILED, error=str(exc)[:300])
        return RecordingState.FAILED
    from hub.models import User

    with transaction.atomic():
        if not Recording.objects.filter(pk=recording_id).update(
            state=RecordingState.READY,
            progress=100,
            duration=built.duration,
            video_bytes=built.video_bytes,
            audio_bytes=built.audio_bytes,
            built_at=timezone.now(),
        ):
            return "gone"
        users = User.objects.filter(pk__in=[int(p) for p in built.participants if p.isdigit()])
        RecordingAppearance.objects.filter(recording_id=recording_id).exclude(user__in=users).delete()
        for user in users:
            RecordingAppearance.objects.get_or_create(recording_id=recording_id, user=user)
    return RecordingState.READY
