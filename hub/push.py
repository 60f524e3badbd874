"""Web Push (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID) of notifications.

A member's devices subscribe (`push_subscribe`); each notification written by
`rooms.services.notification_create` for a member with a device enqueues one
`hub.tasks.push_deliver` job in the same transaction, and the job worker sends it
(`notification_push`): once per device (a `PushDelivery` row is written before the
send), not for the kinds the member muted, silently during his quiet hours.
A device the push service says is gone (404, 410) is forgotten.

What a push says is the upper layers' business: the web client registers the text
and the link of each kind with `register_renderer` (hub knows no kind).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from hub.errors import ErrorCode, HirfaError
from hub.models import Notification, PushDelivery, PushPreference, PushSubscription, User

log = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 10
PUSH_TTL_SECONDS = 24 * 3600
MAX_DEVICES = 10


@dataclass(frozen=True)
class PushText:
    """What a device shows: a title, a line, and the page a tap opens."""

    title: str
    body: str
    url: str


Renderer = Callable[[str, dict[str, object]], PushText]
_renderer: list[Renderer] = []


def register_renderer(renderer: Renderer) -> None:
    """Set how a notification (kind, data) reads on a device; called from an AppConfig.ready()."""
    _renderer[:] = [renderer]


def notification_text(notification: Notification) -> PushText | None:
    """How `notification` reads, in the active language (None before a renderer is registered)."""
    if not _renderer:
        return None
    return _renderer[0](notification.kind, notification.data if isinstance(notification.data, dict) else {})


def push_enabled() -> bool:
    """Whether the hub has VAPID keys, without which no push can be sent."""
    return bool(settings.HIRFA_VAPID_PUBLIC_KEY and settings.HIRFA_VAPID_PRIVATE_KEY)


def push_subscribe(*, user: User, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Keep (or move to `user`) the device at `endpoint`; `invalid` for a malformed one."""
    if not push_enabled():
        raise HirfaError(ErrorCode.INVALID, _("Notifications on this device are not available."), field="endpoint")
    if not endpoint.startswith(("https://", "http://")) or len(endpoint) > 1000:
        raise HirfaError(ErrorCode.INVALID, _("This device cannot receive notifications."), field="endpoint")
    if not (0 < len(p256dh) <= 200 and 0 < len(auth) <= 64):
        raise HirfaError(ErrorCode.INVALID, _("This device cannot receive notifications."), field="keys")
    with transaction.atomic():
        subscription, _created = PushSubscription.objects.update_or_create(
            endpoint=endpoint, defaults={"user": user, "p256dh": p256dh, "auth": auth}
        )
        # A member has a bounded number of devices: the oldest ones go.
        extra = PushSubscription.objects.filter(user=user).order_by("-created_at", "-pk")[MAX_DEVICES:]
        PushSubscription.objects.filter(pk__in=[s.pk for s in extra]).delete()
    return subscription


def push_unsubscribe(*, user: User, endpoint: str) -> bool:
    """Forget `user`'s device at `endpoint`; False when he had none there."""
    deleted, _rows = PushSubscription.objects.filter(user=user, endpoint=endpoint).delete()
    return bool(deleted)


def push_preference_set(
    *, user: User, muted_kinds: list[str], quiet_from: time | None, quiet_to: time | None, tz: str
) -> PushPreference:
    """Set the kinds `user` does not want pushed and his quiet hours (both or neither)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise HirfaError(ErrorCode.INVALID, _("Unknown time zone."), field="tz") from None
    if (quiet_from is None) != (quiet_to is None):
        raise HirfaError(ErrorCode.INVALID, _("Give both ends of the quiet hours, or neither."), field="quiet_from")
    preference, _created = PushPreference.objects.update_or_create(
        user=user,
        defaults={"muted_kinds": sorted(set(muted_kinds)), "quiet_from": quiet_from, "quiet_to": quiet_to, "tz": tz},
    )
    return preference


def in_quiet_hours(preference: PushPreference | None, moment: datetime) -> bool:
    """Whether `moment` falls in the member's quiet hours (which may run past midnight)."""
    if preference is None or preference.quiet_from is None or preference.quiet_to is None:
        return False
    local = moment.astimezone(ZoneInfo(preference.tz)).time()
    start, end = preference.quiet_from, preference.quiet_to
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def notification_push_wanted(*, notification: Notification) -> bool:
    """Whether a push job is worth enqueuing: push is configured and the member has a device."""
    return push_enabled() and PushSubscription.objects.filter(user_id=notification.user_id).exists()


def _send(subscription: PushSubscription, payload: str) -> int:
    """Encrypt and POST `payload` to the device; the push service's HTTP status."""
    from pywebpush import WebPushException, webpush

    try:
        response = webpush(
            subscription_info={"endpoint": subscription.endpoint,
                               "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
            data=payload,
            vapid_private_key=settings.HIRFA_VAPID_PRIVATE_KEY,
            vapid_claims={"sub": settings.HIRFA_VAPID_SUBJECT},
            timeout=PUSH_TIMEOUT_SECONDS,
            ttl=PUSH_TTL_SECONDS,
        )
    except WebPushException as exc:
        return exc.response.status_code if exc.response is not None else 0
    return int(getattr(response, "status_code", 201))


def notification_push(*, notification_id: int) -> int:
    """Push notification `notification_id` to each of its member's devices not yet pushed;
    returns how many pushes the push services accepted."""
    notification = Notification.objects.filter(pk=notification_id).select_related("user").first()
    if notification is None or not push_enabled():
        return 0
    user = notification.user
    preference = PushPreference.objects.filter(user=user).first()
    if preference is not None and notification.kind in preference.muted_kinds:
        return 0
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        text = notification_text(notification)
    if text is None:
        return 0
    unread = Notification.objects.filter(user=user, read_at__isnull=True).count()
    payload = json.dumps(
        {"title": text.title, "body": text.body, "url": text.url, "tag": f"n{notification.pk}",
         "count": unread, "silent": in_quiet_hours(preference, timezone.now())},
        ensure_ascii=False,
    )
    accepted = 0
    for subscription in PushSubscription.objects.filter(user=user):
        try:
            with transaction.atomic():
                PushDelivery.objects.create(notification=notification, subscription=subscription)
        except IntegrityError:
            continue  # already pushed to this device by an earlier run
        status = _send(subscription, payload)
        if status in (404, 410):
            subscription.delete()
        elif 200 <= status < 300:
            accepted += 1
        else:
            log.warning("push to %s refused with HTTP %s", subscription.endpoint[:60], status)
    return accepted
