"""Image attachments: upload before the message, attach on `send`.

An uploaded image belongs to its uploader and its room until a message of his
in that room claims it (`rooms.services.message_post`). What is stored is
never the uploaded bytes: `hub.images.validate_and_resize_image` decodes and
re-encodes the picture (metadata dropped), and writes a 320 px thumbnail.
Files go to ``MEDIA_ROOT/attachments/``; Django serves them in DEBUG, the
front web server in production.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.images import Upload, validate_and_resize_image
from hub.models import User
from rooms.models import Attachment
from rooms.ratelimit import TokenBuckets
from rooms.selectors import member_is_muted, room_access

ATTACHMENT_MAX_SIDE = getattr(settings, "HIRFA_ATTACHMENT_MAX_SIDE", 2560)
THUMBNAIL_SIDE = 320

# A few pictures at once, then one every 5 seconds: images cost disk and CPU.
upload_buckets = TokenBuckets(
    burst=getattr(settings, "HIRFA_UPLOAD_RATE_BURST", 10),
    per_second=getattr(settings, "HIRFA_UPLOAD_RATE_PER_SECOND", 0.2),
)


def attachment_upload(*, user: User, room_id: int, upload: Upload) -> Attachment:
    """Validate, re-encode and store an image `user` uploads for a message in `room_id`.

    Refuses with `not_found` (a room he may not read, or none), `muted`,
    `rate_limited`, `too_long` (more than ``HIRFA_ATTACHMENT_MAX_BYTES`` bytes
    or ``HIRFA_ATTACHMENT_MAX_PIXELS`` pixels) or `invalid` (not a JPEG, PNG,
    WebP or GIF). The attachment is not yet on any message.
    """
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
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size=image.size,
    )
    attachment.image.save(name, ContentFile(image.data), save=False)
    attachment.thumbnail.save(name, ContentFile(image.thumbnail), save=False)
    try:
        with transaction.atomic():
            attachment.save()
    except Exception:
        # No row, no files: nothing is left behind for a failed write.
        attachment.image.delete(save=False)
        attachment.thumbnail.delete(save=False)
        raise
    return attachment
