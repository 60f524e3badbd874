"""The web pages. Each view decodes the request, calls a selector or a service,
and renders; live updates come over the socket (see static/hirfa/socket.js).

A room the user may not read is a 404, whether it exists or not, like the
socket's `not_found`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST, require_safe

from frontend import selectors as page_selectors
from frontend.i18n import js_strings, meeting_js_strings
from gatherings import selectors as gathering_selectors
from hub import digests, push
from hub.auth import member_of
from hub.errors import ErrorCode, HirfaError
from hub.models import DigestPreference, PushPreference, User
from hub.replica import stale_reads_ok
from registry import selectors as registry_selectors
from rooms import selectors, services
from rooms.models import RoomKind
from signaling import selectors as meeting_selectors

STATIC_DIR = Path(__file__).resolve().parent / "static" / "hirfa"
# outbox.js's exports, dropped for the service worker (a classic script).
OUTBOX_EXPORT = re.compile(r"^export (?=(?:const|function) )", re.MULTILINE)
# Kept by the service worker at install: the shell every page needs, offline too.
SHELL_FILES = ["hirfa.css", "dom.js", "badge.js", "pwa.js", "outbox.js", "socket.js", "markdown.js", "room.js", "online.js",
               "rooms.js", "meeting-banner.js", "icons.svg", "icons/icon-192.png"]
# The kinds a member may choose to have pushed to his devices.
PUSH_KINDS = [
    ("mention", _lazy("Mentions")),
    ("reminder", _lazy("Reminders of gatherings")),
    ("gathering", _lazy("Changes to gatherings")),
    ("exchange", _lazy("Matches on the exchange")),
    ("system", _lazy("News about my account")),
]
INITIAL_MESSAGES = 30
MEMBERS_SHOWN = 60
DISCOVER_SHOWN = 60
# The preset reactions offered under each message.
REACTIONS = ["👍", "❤️", "😂", "🎉", "🙏", "😮"]

PUBLIC_KINDS = [
    (RoomKind.GUILD.value, RoomKind.GUILD.label),
    (RoomKind.REGION.value, RoomKind.REGION.label),
    (RoomKind.GUILD_REGION.value, RoomKind.GUILD_REGION.label),
]


def _error_text(exc: HirfaError) -> str:
    """A translated sentence for a refused action (the service's message is English)."""
    texts = {
        ErrorCode.NOT_FOUND: _("No such room."),
        ErrorCode.FORBIDDEN: _("You are not allowed to do this."),
        ErrorCode.INVALID: _("This request is not valid."),
        ErrorCode.EMPTY: _("Please fill in the form."),
    }
    return texts.get(exc.code, exc.message)


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Redirect to the form's `next` when it is a local URL, else to `fallback`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(fallback)


def _direct_title(user: User, room_id: int) -> str:
    """A direct room is named after the other member."""
    others = [
        m.user.display_name
        for m in selectors.room_members(user=user, room_id=room_id)
        if m.user_id != user.pk
    ]
    return ", ".join(others) or _("Direct conversation")


def _int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


@require_GET
@stale_reads_ok
def home(request: HttpRequest) -> HttpResponse:
    """Signed-in members go to their rooms; a visitor gets the page that says what Hirfa is:
    featured verified artisans and pieces, the census map, upcoming public gatherings, sign-up."""
    if request.user.is_authenticated:
        return redirect("rooms")
    return render(
        request,
        "frontend/home.html",
        {
            "products": registry_selectors.featured_products(limit=8),
            "artisans": registry_selectors.featured_artisans(limit=6),
            "census_map": registry_selectors.census_map_page(),
            "census": registry_selectors.counts_by_wilaya_code(),
            "gatherings": gathering_selectors.public_upcoming(limit=4),
        },
    )


@login_required
@require_GET
def rooms(request: HttpRequest) -> HttpResponse:
    """The rooms the member follows (unread counts kept live by rooms.js) and public rooms to discover."""
    user = member_of(request)
    kind = request.GET.get("kind", "")
    if kind not in {k for k, _label in PUBLIC_KINDS}:
        kind = ""
    query = request.GET.get("q", "").strip()[:80]
    followed = [
        replace(r, title=_direct_title(user, r.id)) if r.kind == RoomKind.DIRECT else r
        for r in selectors.rooms_for_user(user=user)
    ]
    discover = list(selectors.public_rooms(user=user, kind=kind or None, query=query)[
        :DISCOVER_SHOWN
    ])
    config = {
        "rooms": [{"id": r.id, "rev": r.rev, "unread": r.unread} for r in followed],
        "me": user.pk,
        "loginUrl": resolve_url(settings.LOGIN_URL),
    }
    return render(
        request,
        "frontend/rooms.html",
        {
            "followed": followed,
            "discover": discover,
            "kinds": PUBLIC_KINDS,
            "kind": kind,
            "query": query,
            "config": config,
            "i18n": js_strings(),
            "moderates": page_selectors.user_moderates_any(user=user),
        },
    )


@login_required
@require_GET
def room(request: HttpRequest, room_id: int) -> HttpResponse:
    """A room: the latest messages in the page, the rest (live, older, missed) over the socket."""
    user = member_of(request)
    try:
        access = selectors.room_access(user=user, room_id=room_id)
        # The rev is read before the history, so a resume from it replays anything newer.
        rev = access.room.last_rev
        history, more = selectors.room_history(
            user=user, room_id=room_id, limit=INITIAL_MESSAGES
        )
        members = selectors.room_members(user=user, room_id=room_id)
    except HirfaError as exc:
        raise Http404(_("No such room.")) from exc
    muted = selectors.member_is_muted(access.membership)
    title = access.room.display_title()
    if access.room.kind == RoomKind.DIRECT:
        title = _direct_title(user, room_id)
    config: dict[str, Any] = {
        "room": access.room.pk,
        "rev": rev,
        "more": more,
        "me": user.pk,
        "meName": user.display_name,
        "moderator": access.can_moderate,
        "follows": access.follows,
        "mutedUntil": (
            access.membership.muted_until.isoformat()
            if muted and access.membership and access.membership.muted_until
            else None
        ),
        "loginUrl": resolve_url(settings.LOGIN_URL),
        "readId": access.membership.last_read_seq if access.membership else 0,
        "maxChars": settings.HIRFA_MESSAGE_MAX_CHARS,
        "maxUpload": settings.HIRFA_ATTACHMENT_MAX_BYTES,
        "uploadUrl": f"/api/rooms/{access.room.pk}/attachments",
        "voiceMaxSeconds": settings.HIRFA_VOICE_MAX_SECONDS,
        "icons": static("hirfa/icons.svg"),
        "directUrl": reverse("direct_open"),
        "reactions": REACTIONS,
        "messages": [m.model_dump(mode="json") for m in history],
    }
    return render(
        request,
        "frontend/room.html",
        {
            "room": access.room,
            "title": title,
            "access": access,
            "muted": muted,
            "members": members[:MEMBERS_SHOWN],
            "members_total": len(members),
            "config": config,
            "i18n": js_strings(),
            "moderates": access.can_moderate or page_selectors.user_moderates_any(user=user),
            "slow_mode_choices": _slow_mode_choices() if access.can_moderate else [],
            "may_start_meeting": _may_start_meeting(access),
        },
    )


@login_required
@require_POST
def room_follow(request: HttpRequest, room_id: int) -> HttpResponse:
    user = member_of(request)
    try:
        services.room_follow(user=user, room_id=room_id)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("You follow this room now."))
    return _back(request, reverse("rooms"))


@login_required
@require_POST
def room_leave(request: HttpRequest, room_id: int) -> HttpResponse:
    user = member_of(request)
    try:
        services.room_leave(user=user, room_id=room_id)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("You left the room."))
    return _back(request, reverse("rooms"))


SLOW_MODE_CHOICES = (0, 10, 30, 60, 300)


def _slow_mode_choices() -> list[tuple[int, str]]:
    return [
        (0, _("Off")),
        (10, _("One message every 10 seconds")),
        (30, _("One message every 30 seconds")),
        (60, _("One message a minute")),
        (300, _("One message every 5 minutes")),
    ]


@login_required
@require_POST
def room_slow_mode(request: HttpRequest, room_id: int) -> HttpResponse:
    """Moderators: set the room's slow mode."""
    user = member_of(request)
    seconds = _int(request.POST.get("seconds"))
    try:
        if seconds not in SLOW_MODE_CHOICES:
            raise HirfaError(ErrorCode.INVALID, _("Choose a slow mode from the list."))
        services.slow_mode_set(moderator=user, room_id=room_id, seconds=seconds)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, _("Slow mode updated."))
    return redirect("room", room_id=room_id)


@login_required
@require_POST
def direct_open(request: HttpRequest) -> HttpResponse:
    """Open (or create) the direct room with a member and go there."""
    user = member_of(request)
    other = _int(request.POST.get("user"))
    try:
        if other is None:
            raise HirfaError(ErrorCode.INVALID, "No such member.")
        direct = services.direct_room_open(user=user, other_id=other)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
        return _back(request, reverse("rooms"))
    return redirect("room", room_id=direct.pk)


@login_required
@require_POST
def group_create(request: HttpRequest) -> HttpResponse:
    """Create a private group with the chosen members and go there."""
    user = member_of(request)
    title = request.POST.get("title", "").strip()
    member_ids = [m for m in (_int(v) for v in request.POST.getlist("members")) if m]
    try:
        if not title:
            raise HirfaError(ErrorCode.EMPTY, "A group needs a title.")
        group = services.group_create(user=user, title=title[:120], member_ids=member_ids)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
        return _back(request, reverse("rooms"))
    messages.success(request, _("Your private group is ready."))
    return redirect("room", room_id=group.pk)


@login_required
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    """The notification centre: the member's newest notifications, unread ones marked,
    and what is pushed to his devices."""
    user = member_of(request)
    preference = PushPreference.objects.filter(user=user).first()
    muted = set(preference.muted_kinds) if preference else set()
    return render(
        request, "frontend/notifications.html",
        {
            "notifications": page_selectors.notifications_recent(user=user),
            "push_enabled": push.push_enabled(),
            "vapid_key": settings.HIRFA_VAPID_PUBLIC_KEY,
            "push_kinds": [(kind, label, kind not in muted) for kind, label in PUSH_KINDS],
            "preference": preference,
            "digest_choices": DigestPreference.After.choices,
            "digest_after": digests.digest_after(user),
        },
    )


@login_required
@require_POST
def digest_preference(request: HttpRequest) -> HttpResponse:
    """When the member's unread notifications are e-mailed to him (the centre's form)."""
    user = member_of(request)
    try:
        digests.digest_preference_set(user=user, after_hours=int(request.POST.get("after_hours", "")))
    except ValueError:
        messages.error(request, _("Choose when to receive these e-mails."))
    else:
        messages.success(request, _("Your notification settings are saved."))
    return redirect(reverse("notifications") + "#email")


@login_required
@require_POST
def push_subscription(request: HttpRequest) -> HttpResponse:
    """Add (or, with "remove": true, forget) this device for Web Push: a JSON body
    {"endpoint", "keys": {"p256dh", "auth"}} as the browser's PushSubscription gives it."""
    user = member_of(request)
    try:
        body = json.loads(request.body or b"{}")
        endpoint = str(body["endpoint"])
        if body.get("remove"):
            push.push_unsubscribe(user=user, endpoint=endpoint)
            return JsonResponse({"ok": True})
        keys = body["keys"]
        push.push_subscribe(user=user, endpoint=endpoint, p256dh=str(keys["p256dh"]), auth=str(keys["auth"]))
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"ok": False, "code": ErrorCode.INVALID.value}, status=400)
    except HirfaError as exc:
        return JsonResponse({"ok": False, "code": exc.code.value, "message": exc.message}, status=400)
    return JsonResponse({"ok": True})


@login_required
@require_POST
def push_preferences(request: HttpRequest) -> HttpResponse:
    """The kinds pushed to the member's devices and his quiet hours (the centre's form)."""
    user = member_of(request)
    muted = [kind for kind, _label in PUSH_KINDS if request.POST.get(f"push_{kind}") != "on"]
    try:
        quiet_from = time.fromisoformat(request.POST["quiet_from"]) if request.POST.get("quiet_from") else None
        quiet_to = time.fromisoformat(request.POST["quiet_to"]) if request.POST.get("quiet_to") else None
        push.push_preference_set(
            user=user, muted_kinds=muted, quiet_from=quiet_from, quiet_to=quiet_to, tz=settings.TIME_ZONE
        )
    except ValueError:
        messages.error(request, _("Enter the quiet hours as hours and minutes."))
    except HirfaError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Your notification settings are saved."))
    return redirect("notifications")


@login_required
@require_GET
def notification_open(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Follow a notification: it becomes read and the member lands on what it is about."""
    user = member_of(request)
    target = page_selectors.notification_target(user=user, notification_id=notification_id)
    if target is None:
        raise Http404(_("No such page."))
    services.notifications_mark_read(user=user, ids=[notification_id])
    return HttpResponseRedirect(target)


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    """Mark every notification of the member read."""
    user = member_of(request)
    services.notifications_mark_read(user=user)
    return redirect("notifications")


@require_GET
def manifest(request: HttpRequest) -> HttpResponse:
    """The web app manifest, in the visitor's language (name, direction, icons, theme)."""
    from django.templatetags.static import static
    from django.utils.translation import get_language, get_language_bidi

    data = {
        "name": _("Hirfa — the artisans of Algeria"),
        "short_name": _("Hirfa"),
        "description": _("Chat, gatherings and the registry of Algeria's artisans."),
        "lang": get_language(),
        "dir": "rtl" if get_language_bidi() else "ltr",
        "start_url": reverse("home"),
        "scope": "/",
        "display": "standalone",
        "background_color": "#f5f3ef",
        "theme_color": "#0f6e66",
        "icons": [
            {"src": static(f"hirfa/icons/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
             "purpose": "any maskable"}
            for size in (192, 512)
        ],
    }
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False})
    response["Content-Type"] = "application/manifest+json"
    response["Vary"] = "Cookie, Accept-Language"
    return response


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker, served from the root so that its scope is the whole site.

    Its cache name carries the fingerprint of the static files it pre-caches, so a
    deploy that changes them replaces the old cache.
    """
    from django.templatetags.static import static

    # outbox.js is an ES module for the page; a service worker is a classic script (module
    # workers are not in every browser that has service workers), so it gets the same
    # declarations with their `export` dropped.
    outbox = OUTBOX_EXPORT.sub("", (STATIC_DIR / "outbox.js").read_text(encoding="utf-8"))
    source = outbox + "\n" + (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    shell = [reverse("offline"), *(static(f"hirfa/{name}") for name in SHELL_FILES)]
    version = hashlib.sha256(("\n".join(shell) + source).encode()).hexdigest()[:12]
    body = f"const VERSION = {json.dumps(version)};\nconst SHELL = {json.dumps(shell)};\n{source}"
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def offline(request: HttpRequest) -> HttpResponse:
    """What the installed app shows for a page it has not kept while the network is gone."""
    return render(request, "frontend/offline.html")


@login_required
@require_GET
def me(request: HttpRequest) -> HttpResponse:
    """The "Me" tab: the member's own pages, the sections the bottom bar has no room for, and log-out."""
    user = member_of(request)
    return render(
        request, "frontend/me.html", {"moderates": page_selectors.user_moderates_any(user=user)}
    )


@login_required
@require_GET
def moderation(request: HttpRequest) -> HttpResponse:
    """The moderators' queue of open reports; members who moderate nothing get a 404."""
    user = member_of(request)
    if not page_selectors.user_moderates_any(user=user):
        raise Http404(_("No such page."))
    return render(
        request,
        "frontend/moderation.html",
        {"reports": page_selectors.reports_open(moderator=user), "moderates": True},
    )


@login_required
@require_POST
def report_resolve(request: HttpRequest, report_id: int) -> HttpResponse:
    user = member_of(request)
    action = request.POST.get("action", "")
    try:
        services.report_resolve(moderator=user, report_id=report_id, action=action)
    except HirfaError as exc:
        messages.error(request, _error_text(exc))
    else:
        if action == "delete":
            messages.success(request, _("The message was deleted."))
        else:
            messages.success(request, _("The report was dismissed."))
    return redirect("moderation")


def _may_start_meeting(access: selectors.RoomAccess) -> bool:
    """Moderators start meetings in guild and region rooms, any member in groups and direct rooms
    (the rule of ``signaling.services.meeting_start``)."""
    return access.can_moderate or not access.room.is_public


@login_required
@require_GET
def meeting(request: HttpRequest, room_id: int) -> HttpResponse:
    """A room's live meeting: device choice before joining, then the call (static/hirfa/meeting.js).

    A room the user may not read is a 404. The host controls are rendered only
    for a host of the live meeting, or, when none is live, for whoever may start
    one (he hosts what he starts); the client still shows them only once the
    server says ``meeting_joined.host``.
    """
    user = member_of(request)
    try:
        access = selectors.room_access(user=user, room_id=room_id)
    except HirfaError as exc:
        raise Http404(_("No such room.")) from exc
    live = meeting_selectors.live_meeting(room_id=room_id)
    may_start = _may_start_meeting(access)
    if live is not None:
        host = meeting_selectors.meeting_is_host(user=user, meeting=live, access=access)
    else:
        host = may_start
    recording = live is not None and meeting_selectors.meeting_recording(meeting_id=live.pk) is not None
    title = access.room.display_title()
    if access.room.kind == RoomKind.DIRECT:
        title = _direct_title(user, room_id)
    config: dict[str, Any] = {
        "room": access.room.pk,
        "me": user.pk,
        "meName": user.display_name,
        "host": host,
        "mayStart": may_start,
        "live": live.pk if live is not None else None,
        "recording": recording,
        "roomUrl": reverse("room", args=[access.room.pk]),
        "loginUrl": resolve_url(settings.LOGIN_URL),
        "icons": static("hirfa/icons.svg"),
    }
    return render(
        request,
        "frontend/meeting.html",
        {
            "room": access.room,
            "title": title,
            "host": host,
            "may_start": may_start,
            "live": live,
            "recording": recording,
            "config": config,
            "i18n": meeting_js_strings(),
            "moderates": access.can_moderate or page_selectors.user_moderates_any(user=user),
        },
    )


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """`/favicon.ico`, which browsers and link previews ask for whatever a page names: the
    app's icon."""
    return redirect(static("hirfa/icons/icon-192.png"), permanent=True)
