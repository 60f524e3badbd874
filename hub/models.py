"""The community domain: reference data (wilayas, trades), artisans, roles, notifications."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from hub.bidi import bidi_strip
from hub.notifications import kind_choices


class LocalizedName(models.Model):
    """Reference data named in several languages; `name` picks the active one."""

    name_fr = models.CharField(_("name (French)"), max_length=120)
    name_ar = models.CharField(_("name (Arabic)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120, blank=True)
    # Tamazight in Latin letters (Kabyle spelling: ɛ ɣ ḥ ṛ ṣ ṭ ẓ č ǧ), and in Tifinagh;
    # blank where no name is established.
    name_ber = models.CharField(_("name (Tamazight)"), max_length=120, blank=True)
    name_tfng = models.CharField(_("name (Tifinagh)"), max_length=120, blank=True)

    class Meta:
        abstract = True

    def localized_name(self, language: str | None = None) -> str:
        lang = (language or get_language() or "fr").split("-")[0]
        value = {"ar": self.name_ar, "en": self.name_en, "ber": self.name_ber, "kab": self.name_ber}.get(
            lang, ""
        )
        return value or self.name_fr

    @property
    def tifinagh(self) -> str:
        """The name in Tifinagh, shown beside the Latin one to Tamazight readers; may be blank."""
        return self.name_tfng

    @property
    def name(self) -> str:
        return self.localized_name()

    def __str__(self) -> str:
        return self.localized_name()


class Wilaya(LocalizedName):
    """An administrative province. New wilayas are rows, never code.

    A wilaya created by splitting another names its `parent` and the date its
    law takes effect (`valid_from`); until then it is listed but not offered.
    """

    code = models.PositiveSmallIntegerField(_("code"), unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    neighbours = models.ManyToManyField("self", blank=True, symmetrical=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("wilaya")
        verbose_name_plural = _("wilayas")

    def is_in_force(self, day: date | None = None) -> bool:
        day = day or timezone.localdate()
        return self.valid_from is None or self.valid_from <= day

    @property
    def label(self) -> str:
        """The one way a wilaya is written on every page and form: "13 Tlemcen"."""
        return f"{self.code:02d} {self.localized_name()}"


class TradeDomain(LocalizedName):
    """One of the three domains of the official crafts nomenclature."""

    code = models.CharField(_("code"), max_length=16, unique=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("trade domain")
        verbose_name_plural = _("trade domains")


# The icons of the sprite (frontend/static/hirfa/icons.svg) a trade may be drawn with;
# a trade added later draws the default until someone gives it one.
TRADE_ICONS = frozenset(
    [
        "amphora", "anvil", "axe", "brick-wall", "car", "cooking-pot", "cpu", "croissant", "crown",
        "droplets", "fence", "flask-conical", "flower", "footprints", "gem", "grid-3x3", "guitar",
        "hammer", "handbag", "paint-roller", "palette", "pen-tool", "pickaxe", "scissors", "shapes",
        "shirt", "shopping-basket", "snowflake", "soap-dispenser-droplet", "sparkles", "wheat",
        "wine", "zap",
    ]
)
TRADE_ICON_DEFAULT = "hammer"


class Trade(LocalizedName):
    """A craft activity (a guild); `activity_code` is the official 7-digit code when known."""

    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    domain = models.ForeignKey(TradeDomain, on_delete=models.PROTECT, related_name="trades")
    activity_code = models.CharField(
        _("activity code"), max_length=7, blank=True, default="", db_index=True
    )
    # The name of a symbol of the icon sprite; see `TRADE_ICONS`.
    icon = models.CharField(_("icon"), max_length=40, blank=True, default=TRADE_ICON_DEFAULT)

    class Meta:
        ordering = ["domain__code", "slug"]
        verbose_name = _("trade")
        verbose_name_plural = _("trades")
        constraints = [
            models.UniqueConstraint(
                fields=["activity_code"],
                condition=~Q(activity_code=""),
                name="trade_activity_code_unique",
            )
        ]

    @property
    def icon_name(self) -> str:
        """The sprite symbol to draw: its own icon when the sprite has it, else the default."""
        return self.icon if self.icon in TRADE_ICONS else TRADE_ICON_DEFAULT


class User(AbstractUser):
    """An account. The artisan's public face lives in `ArtisanProfile`."""

    preferred_language = models.CharField(_("language"), max_length=8, blank=True, default="")
    # In international digits (213555123456), or "": another way to log in than the username.
    phone = models.CharField(_("phone"), max_length=20, blank=True, default="")

    class Meta(AbstractUser.Meta):
        constraints = [
            models.UniqueConstraint(fields=["phone"], condition=~models.Q(phone=""), name="hub_user_phone_once"),
        ]

    @property
    def display_name(self) -> str:
        profile = getattr(self, "profile", None)
        # Stripped on read too: names stored before bidi controls were refused.
        return bidi_strip(profile.display_name if profile else "") or self.username


class ArtisanProfile(models.Model):
    class Language(models.TextChoices):
        ARABIC = "ar", _("Arabic")
        FRENCH = "fr", _("French")
        TAMAZIGHT = "ber", _("Tamazight")
        ENGLISH = "en", _("English")

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(_("display name"), max_length=80)
    wilaya = models.ForeignKey(
        Wilaya, null=True, blank=True, on_delete=models.PROTECT, related_name="artisans"
    )
    trades = models.ManyToManyField(Trade, blank=True, related_name="artisans")
    languages = models.JSONField(_("languages"), default=list, blank=True)
    bio = models.TextField(_("short bio"), max_length=500, blank=True)
    avatar = models.ImageField(_("avatar"), upload_to="avatars/", blank=True)

    class Meta:
        verbose_name = _("artisan profile")
        verbose_name_plural = _("artisan profiles")

    def __str__(self) -> str:
        return self.display_name


class ModeratorScope(models.Model):
    """A moderator's mandate: a trade, a wilaya, or a trade within a wilaya."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="moderator_scopes")
    trade = models.ForeignKey(Trade, null=True, blank=True, on_delete=models.CASCADE)
    wilaya = models.ForeignKey(Wilaya, null=True, blank=True, on_delete=models.CASCADE)

    class Meta:
        verbose_name = _("moderator scope")
        verbose_name_plural = _("moderator scopes")
        constraints = [
            models.CheckConstraint(
                condition=Q(trade__isnull=False) | Q(wilaya__isnull=False),
                name="moderator_scope_not_empty",
            ),
            models.UniqueConstraint(
                fields=["user", "trade", "wilaya"], name="moderator_scope_unique"
            ),
        ]

    def __str__(self) -> str:
        parts = [str(p) for p in (self.trade, self.wilaya) if p]
        return f"{self.user} — {' × '.join(parts)}"


class Notification(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    # Kinds are registered by the apps that send them (hub/notifications.py).
    kind = models.CharField(max_length=24, choices=kind_choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # When it went out by e-mail: its own (a gathering's) or in a digest of what was missed.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"]),
            # The digests' sweep (hub/digests.py), every tick: only what is unread and not e-mailed.
            models.Index(
                fields=["created_at"], condition=Q(read_at__isnull=True, emailed_at__isnull=True),
                name="notification_digest_waiting",
            ),
        ]


class PushSubscription(models.Model):
    """One device (browser) of a member that receives Web Push; the endpoint is its address
    at the browser's push service, p256dh and auth its keys (RFC 8291)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)


class PushDelivery(models.Model):
    """A notification pushed to a device: the row is written before the push, once."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="push_deliveries")
    subscription = models.ForeignKey(PushSubscription, on_delete=models.CASCADE, related_name="deliveries")
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["notification", "subscription"], name="push_delivered_once")
        ]


class PushPreference(models.Model):
    """A member's choices for pushes: kinds he does not want pushed, and quiet hours (in
    `tz`) during which pushes arrive silently. Everything stays in the notification centre."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="push_preference")
    muted_kinds = models.JSONField(default=list)
    quiet_from = models.TimeField(null=True, blank=True)
    quiet_to = models.TimeField(null=True, blank=True)
    tz = models.CharField(max_length=64, default="Africa/Algiers")


class DigestPreference(models.Model):
    """When a member wants his unread notifications e-mailed: after `after_hours` unread
    (0: never), one e-mail at most every `after_hours`. A member without a row gets
    `DEFAULT_AFTER_HOURS`."""

    NEVER = 0
    DEFAULT_AFTER_HOURS = 24

    class After(models.IntegerChoices):
        NEVER = 0, _("Never")
        HOUR = 1, _("After an hour")
        DAY = 24, _("After a day")

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="digest_preference")
    after_hours = models.PositiveSmallIntegerField(choices=After.choices, default=DEFAULT_AFTER_HOURS)
    last_sent_at = models.DateTimeField(null=True, blank=True)
