"""The translated strings the ES modules use, rendered into each page as a JSON
blob (`<script type="application/json" id="i18n">`), so there is no
JavaScript catalogue view and no extra request."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

JS_STRINGS: dict[str, Promise] = {
    # connection
    "connecting": _("Connecting…"),
    "online": _("Connected"),
    "offline": _("Offline. Reconnecting in %(seconds)s s…"),
    "reconnecting": _("Reconnecting…"),
    "reload": _("Hirfa was updated: please reload the page."),
    # messages
    "deleted": _("This message was deleted."),
    "edited": _("edited"),
    "sending": _("Sending…"),
    "failed": _("Not sent"),
    "retry": _("Retry"),
    "reply": _("Reply"),
    "replyTo": _("Replying to %(name)s"),
    "editing": _("Editing your message"),
    "cancel": _("Cancel"),
    "edit": _("Edit"),
    "delete": _("Delete"),
    "deleteConfirm": _("Delete this message?"),
    "react": _("React"),
    "report": _("Report"),
    "reportDone": _("Thank you. The moderators will look at it."),
    "mute": _("Mute"),
    "unmute": _("Unmute"),
    "ban": _("Ban"),
    "banConfirm": _("Ban %(name)s from this room?"),
    "more": _("More"),
    "olderMessages": _("Load older messages"),
    "noOlder": _("This is the beginning of the room."),
    "newMessages": _("New messages"),
    "typingOne": _("%(name)s is typing…"),
    "typingMany": _("Several people are typing…"),
    "onlineCount": _("Online (%(count)s)"),
    "message": _("Message"),
    "unknownAuthor": _("Former member"),
    "originalMissing": _("Original message not loaded"),
    "mentionedYou": _("%(name)s mentioned you in %(room)s"),
    "removed": _("You no longer have access to this room."),
    "mutedUntil": _("A moderator muted you until %(time)s."),
    "memberMuted": _("%(name)s was muted."),
    "memberBanned": _("%(name)s was banned from the room."),
    "image": _("Image"),
    "uploading": _("Uploading…"),
    "uploadFailed": _("The image could not be uploaded."),
    "tooBig": _("This image is too large."),
    "removeImage": _("Remove image"),
    "today": _("Today"),
    "yesterday": _("Yesterday"),
    # error codes (see docs/protocol.md)
    "err_not_found": _("No such room or message."),
    "err_forbidden": _("You are not allowed to do this."),
    "err_muted": _("You are muted in this room."),
    "err_rate_limited": _("You are sending too fast. Please wait a moment."),
    "err_slow_mode": _("Slow mode is on in this room. Please wait a moment."),
    "err_too_long": _("This message is too long."),
    "err_empty": _("Write something first."),
    "err_invalid": _("This request is not valid."),
    "err_internal_error": _("Something went wrong on the server."),
    "err_other": _("Something went wrong."),
}


def js_strings() -> dict[str, str]:
    """The strings in the active language."""
    return {key: str(text) for key, text in JS_STRINGS.items()}
