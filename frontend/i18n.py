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
    "tooManySockets": _("Hirfa is open in too many tabs or devices. Close one; trying again in %(seconds)s s…"),
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
    "voiceMessage": _("Voice message"),
    "voicePlay": _("Play the voice message (%(time)s)"),
    "voicePause": _("Pause"),
    "voiceHeard": _("Heard: %(count)s"),
    "voiceFailed": _("The voice message could not be played or sent."),
    "voiceUnsupported": _("This browser cannot play this recording."),
    "voiceHold": _("Hold the microphone to record, release to send."),
    "micRefused": _("The microphone is not available: allow it in the browser's settings."),
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


# --- meetings (static/hirfa/meeting.js) ------------------------------------------------
# Kept apart from JS_STRINGS so the room page does not carry them.

MEETING_JS_STRINGS: dict[str, Promise] = {
    "join": _("Join the meeting"),
    "startJoin": _("Start the meeting"),
    "joining": _("Joining…"),
    "noMeeting": _("No meeting is live in this room. A moderator can start one."),
    "meetingLive": _("A meeting is live."),
    "inMeeting": _("In the meeting: %(names)s"),
    "you": _("%(name)s (you)"),
    "screenOf": _("Screen of %(name)s"),
    "cameraN": _("Camera %(n)s"),
    "micN": _("Microphone %(n)s"),
    "noDevices": _("No camera or microphone could be opened: you can still watch and listen."),
    "noCamera": _("The camera could not be opened."),
    "noMic": _("The microphone could not be opened."),
    "screenFailed": _("Screen sharing is not available here."),
    "muteMic": _("Mute the microphone"),
    "unmuteMic": _("Unmute the microphone"),
    "cameraOff": _("Turn the camera off"),
    "cameraOn": _("Turn the camera on"),
    "shareScreen": _("Share the screen"),
    "stopShare": _("Stop sharing"),
    "raiseHand": _("Raise your hand"),
    "lowerHand": _("Lower your hand"),
    "audioOnlyOn": _("Audio only is on: turn it off to use the camera."),
    "host": _("Host"),
    "handUp": _("Hand raised"),
    "micOff": _("Microphone off"),
    "camOff": _("Camera off"),
    "hostMuted": _("Muted by a host"),
    "speaking": _("Speaking"),
    "hostMute": _("Mute"),
    "hostUnmute": _("Allow to speak"),
    "remove": _("Remove"),
    "removeConfirm": _("Remove %(name)s from the meeting?"),
    "admit": _("Admit"),
    "deny": _("Deny"),
    "endConfirm": _("End the meeting for everyone?"),
    "peopleCount": _("People (%(count)s)"),
    "nobodyWaiting": _("Nobody is waiting."),
    "hostMutedYou": _("A host muted your microphone."),
    "hostUnmutedYou": _("A host allowed you to speak again."),
    "reconnectingCall": _("Reconnecting the call…"),
    "reconnecting": _("Reconnecting…"),
    "usage": _("↑ %(up)s · ↓ %(down)s · %(rate)s/min"),
    "pausedForConnection": _("Paused for your connection"),
    "audioOnlyConnection": _("Audio only (your connection): video is paused."),
    "connectionEstimate": _("· your connection ≈ %(kbps)s kbit/s"),
    "videoQuality": _("Video quality: %(quality)s"),
    "quality_low": _("low"),
    "quality_medium": _("medium"),
    "quality_high": _("high"),
    "pin": _("Keep %(name)s's video first"),
    "unpin": _("Stop keeping %(name)s's video first"),
    "ended_left": _("You left the meeting."),
    "ended_removed": _("A host removed you from the meeting."),
    "ended_ended": _("The meeting has ended."),
    "ended_replaced": _("You joined this meeting from another tab or device."),
    "ended_denied": _("A host did not let you in."),
    "err_meeting_locked": _("The meeting is locked: only hosts may join."),
    "err_sfu_unavailable": _("The video server is busy. Please try again in a moment."),
    "err_too_many_tracks": _("You already share this."),
    "err_no_session": _("You are not in this meeting any more."),
    "err_meeting_not_found": _("This meeting has ended."),
    "startRecording": _("Start recording"),
    "stopRecording": _("Stop recording"),
    "recordingStarted": _("The meeting is being recorded. In People, you can choose not to be recorded."),
    "recordingStopped": _("The recording has stopped."),
    "notRecorded": _("Not recorded"),
    "marked": _("Chapter set: %(label)s"),
}


def meeting_js_strings() -> dict[str, str]:
    """The meeting page's strings (the common ones too) in the active language."""
    strings = js_strings()
    strings.update({key: str(text) for key, text in MEETING_JS_STRINGS.items()})
    return strings
