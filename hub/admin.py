"""The Django admin for Hirfa's admins: reference data, accounts and roles, rooms and reports.

Reference data (wilayas, trades) is editable here so that a new wilaya or an
official activity code is a row, not a deployment.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from hub.models import (
    ArtisanProfile,
    ModeratorScope,
    Notification,
    Trade,
    TradeDomain,
    User,
    Wilaya,
)
from rooms.models import Attachment, Membership, Message, Reaction, Report, Room

NAME_FIELDS = ("name_fr", "name_ar", "name_en", "name_ber")


@admin.register(Wilaya)
class WilayaAdmin(admin.ModelAdmin):
    list_display = ("code", "name_fr", "name_ar", "name_ber", "parent", "valid_from")
    list_filter = (("parent", admin.EmptyFieldListFilter), "valid_from")
    search_fields = ("name_fr", "name_ar", "name_en", "name_ber", "=code")
    filter_horizontal = ("neighbours",)
    autocomplete_fields = ("parent",)
    ordering = ("code",)


class TradeInline(admin.TabularInline):
    model = Trade
    fields = ("slug", *NAME_FIELDS, "activity_code")
    extra = 0
    show_change_link = True


@admin.register(TradeDomain)
class TradeDomainAdmin(admin.ModelAdmin):
    list_display = ("code", "name_fr", "name_ar", "name_en")
    search_fields = NAME_FIELDS
    inlines = [TradeInline]


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("slug", "name_fr", "name_ar", "name_en", "domain", "activity_code")
    list_filter = ("domain",)
    search_fields = ("slug", *NAME_FIELDS, "activity_code")
    prepopulated_fields = {"slug": ("name_en",)}


class ArtisanProfileInline(admin.StackedInline):
    model = ArtisanProfile
    can_delete = False
    fields = ("display_name", "wilaya", "trades", "languages", "bio", "avatar")
    autocomplete_fields = ("wilaya", "trades")


class ModeratorScopeInline(admin.TabularInline):
    model = ModeratorScope
    extra = 0
    autocomplete_fields = ("trade", "wilaya")
    verbose_name = _("moderator scope")
    verbose_name_plural = _("moderator scopes (a trade, a wilaya, or both)")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [ArtisanProfileInline, ModeratorScopeInline]
    list_display = ("username", "email", "display_name", "is_staff", "is_active", "date_joined")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,  # type: ignore[misc]
        (_("Preferences"), {"fields": ("preferred_language",)}),
    )

    @admin.display(description=_("display name"))
    def display_name(self, obj: User) -> str:
        return obj.display_name


@admin.register(ArtisanProfile)
class ArtisanProfileAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "wilaya")
    list_filter = ("wilaya", "trades__domain")
    search_fields = ("display_name", "user__username", "user__email")
    autocomplete_fields = ("user", "wilaya", "trades")


@admin.register(ModeratorScope)
class ModeratorScopeAdmin(admin.ModelAdmin):
    list_display = ("user", "trade", "wilaya")
    list_filter = ("wilaya", "trade")
    search_fields = ("user__username",)
    autocomplete_fields = ("user", "trade", "wilaya")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


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
