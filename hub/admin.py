"""The Django admin for Hirfa's admins: reference data, accounts and roles, notifications.
(Each app registers its own models in its `admin.py`.)

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

NAME_FIELDS = ("name_fr", "name_ar", "name_en", "name_ber", "name_tfng")


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
