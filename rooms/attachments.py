"""Attachments (images and voice messages): upload before the message, attach on `send`.

An uploaded file belongs to its uploader and its room until a message of his
in that room claims it (`rooms.services.message_post`). What is stored is
never the uploaded bytes: `hub.images.validate_and_resize_image` decodes and
re-encodes a picture (metadata dropped) and writes a 320 px thumbnail;
`hub.audio.voice_validate` decodes a recording to the end and rewrites its
container. Files go to ``MEDIA_ROOT/attachments/``, served only through the
permission-checked `attachment_file` (rooms/api.py).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext as _

from hub.audio import voice_validate
from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, validate_and_resize_image
from hub.models import User
from rooms.models import Attachment
from rooms.ratelimit import TokenBuckets
from rooms.selectors import RoomAccess, member_is_muted, room_access

ATTACHMENT_MAX_SIDE = getattr(settings, "HIRFA_ATTACHMENT_MAX_SIDE", 2560)
THUMBNAIL_SIDE = 320

# A few pictures at once, then one every 5 seconds: images cost disk and CPU.
upload_buckets = TokenBuckets(
    burst=getattr(settings, "HIRFA_UPLOAD_RATE_BURST", 10),
    per_second=getattr(settings, "HIRFA_UPLOAD_RATE_PER_SECOND", 0.2),
)


def _may_upload(*, user: User, room_id: int) -> RoomAccess:
    access = room_access(user=user, room_id=room_id)
    if member_is_muted(access.membership) and not access.can_moderate:
        raise HirfaError(ErrorCode.MUTED, _("You are muted in this room."), room=room_id)
    wait = upload_buckets.take(user.pk)
    if wait:
        raise HirfaError(
            ErrorCode.RATE_LIMITED,
            _("You are uploading too fast."),
            retry_after=wait,
            room=room_id,
        )
    return access


def _store(attachment: Attachment) -> Attachment:
    try:
        with transaction.atomic():
            attachment.save()
    except Exception:
        # No row, no files: nothing is left behind for a failed write.
        for file in attachment.files():
            file.delete(save=False)
        raise
    return attachment


def attachment_upload(*, user: User, room_id: int, upload: Upload) -> Attachment:
    """Validate, re-encode and store an image `user` uploads for a message in `room_id`.

    Refuses with `not_found` (a room he may not read, or none), `muted`,
    `rate_limited`, `too_long` (more than ``HIRFA_ATTACHMENT_MAX_BYTES`` bytes
    or ``HIRFA_ATTACHMENT_MAX_PIXELS`` pixels) or `invalid` (not a JPEG, PNG,
    WebP or GIF). The attachment is not yet on any message.
    """
    access = _may_upload(user=user, room_id=room_id)
    image = validate_and_resize_image(
        upload,
        max_bytes=settings.HIRFA_ATTACHMENT_MAX_BYTES,
        max_pixels=settings.HIRFA_ATTACHMENT_MAX_PIXELS,
        max_side=ATTACHMENT_MAX_SIDE,
        thumbnail_side=THUMBNAIL_SIDE,
    )
    # A random name: the uploaded file name is never used, and names are not guessable.
    name = f"{uuid.uuid4().hex}.{image.extension}"
    attachment = Attachment(
        room=access.room,
        uploader=user,
        kind=Attachment.Kind.IMAGE,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size=image.size,
    )
    attachment.image.save(name, ContentFile(image.data), save=False)
    attachment.thumbnail.save(name, ContentFile(image.thumbnail), save=False)
    return _store(attachment)


def voice_upload(*, user: User, room_id: int, upload: Upload) -> Attachment:
    """Validate and store a voice recording `user` uploads for a message in `room_id`.

    The same rights and rate as an image; refuses with `not_found`, `muted`,
    `rate_limited`, `too_long` (more than ``HIRFA_VOICE_MAX_BYTES`` bytes or
    ``HIRFA_VOICE_MAX_SECONDS`` seconds) or `invalid` (not Opus in WebM or Ogg, nor
    AAC in MP4, or not decodable to the end). The attachment is not yet on any message.
    """
    access = _may_upload(user=user, room_id=room_id)
    voice = voice_validate(
        upload, max_bytes=settings.HIRFA_VOICE_MAX_BYTES, max_seconds=settings.HIRFA_VOICE_MAX_SECONDS
    )
    attachment = Attachment(
        room=access.room,
        uploader=user,
        kind=Attachment.Kind.VOICE,
        content_type=voice.content_type,
        duration_ms=voice.duration_ms,
        waveform=list(voice.waveform),
        size=voice.size,
    )
    attachment.audio.save(f"{uuid.uuid4().hex}.{voice.extension}", ContentFile(voice.data), save=False)
    return _store(attachment)
