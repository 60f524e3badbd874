"""The Django admin of the rooms: rooms, memberships, messages, reports, attachments."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from rooms.models import Attachment, Membership, Message, Reaction, Report, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "source", "active", "banned", "muted_until", "last_read_seq")
    raw_id_fields = ("user",)


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "trade", "wilaya", "last_seq", "slow_mode_seconds", "created_at")
    list_filter = ("kind",)
    search_fields = ("title", "trade__name_fr", "trade__name_ar", "wilaya__name_fr", "wilaya__name_ar")
    # The sequence counters are the log's bookkeeping: written by the services only.
    readonly_fields = ("last_seq", "last_rev", "direct_key", "created_at")
    raw_id_fields = ("created_by",)
    autocomplete_fields = ("trade", "wilaya")
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("room", "user", "role", "source", "active", "banned", "muted_until")
    list_filter = ("role", "source", "active", "banned", "room__kind")
    search_fields = ("user__username", "room__title")
    raw_id_fields = ("room", "user")


class ReactionInline(admin.TabularInline):
    model = Reaction
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "author", "short_text", "created_at", "edited_at", "deleted_at")
    list_filter = ("room__kind",)
    search_fields = ("text", "author__username")
    raw_id_fields = ("room", "author", "deleted_by")
    # Changing a message here would bypass its rev and its live event; moderators
    # delete through the rooms' tools, which keep the log consistent.
    readonly_fields = ("room", "seq", "rev", "client_id", "created_at", "edited_at", "deleted_at")
    inlines = [ReactionInline]

    @admin.display(description=_("text"))
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("message", "reporter", "status", "created_at", "handled_by", "handled_at")
    list_filter = ("status",)
    search_fields = ("reason", "reporter__username", "message__text")
    raw_id_fields = ("message", "reporter", "handled_by")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("room", "uploader", "content_type", "width", "height", "size", "created_at")
    list_filter = ("content_type",)
    raw_id_fields = ("room", "uploader", "message")
