"""The artisans' registry: census records and their verification, the showcase
(products and their photos, reports), and the raw-materials exchange.

Census data lives in `Census`, a row 1:1 with the user, rather than in
`hub.ArtisanProfile`: the card number and the card's photo are confidential
(the artisan and the moderators only), and keeping them in their own table
means no existing reader of the profile (rooms, API, templates) can leak them
by accident; every read of them goes through `registry.selectors`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hub.models import Wilaya


def private_storage() -> FileSystemStorage:
    """Storage outside MEDIA_ROOT, for files only permission-checked views serve."""
    from django.conf import settings

    return FileSystemStorage(location=settings.PRIVATE_MEDIA_ROOT, base_url=None)

class WorkshopKind(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual workshop")
    COOPERATIVE = "cooperative", _("Cooperative")
    COMPANY = "company", _("Company")


class ContactChannel(models.TextChoices):
    PHONE = "phone", _("Phone")
    WHATSAPP = "whatsapp", _("WhatsApp")
    EMAIL = "email", _("E-mail")


class VerificationStatus(models.TextChoices):
    NONE = "none", _("Not submitted")
    PENDING = "pending", _("Pending review")
    VERIFIED = "verified", _("Verified")
    REJECTED = "rejected", _("Rejected")


class Census(models.Model):
    """An artisan's census record. Card fields are confidential (see module doc)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="census"
    )
    commune = models.CharField(_("commune"), max_length=120, blank=True)
    workshop_kind = models.CharField(
        _("kind of workshop"), max_length=16, choices=WorkshopKind.choices,
        default=WorkshopKind.INDIVIDUAL,
    )
    years_of_practice = models.PositiveSmallIntegerField(_("years of practice"), null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    whatsapp = models.CharField(_("WhatsApp"), max_length=32, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    public_channels = models.JSONField(_("public contact channels"), default=list, blank=True)
    # The storefront's own face: a wide photo of the workshop and its story (public).
    story = models.TextField(_("story of the workshop"), max_length=2000, blank=True)
    cover = models.ImageField(_("cover photo"), upload_to="covers/", blank=True)
    cover_width = models.PositiveIntegerField(default=0)
    cover_height = models.PositiveIntegerField(default=0)
    # Confidential: the artisan and the moderators of his wilaya only.
    card_number = models.CharField(_("artisan card number"), max_length=32, blank=True)
    issuing_chamber = models.CharField(_("issuing chamber"), max_length=120, blank=True)
    # Outside MEDIA_ROOT: the web server never serves it; only the checked view does.
    card_photo = models.ImageField(
        _("photo of the card"), upload_to="cards/", storage=private_storage, blank=True
    )
    status = models.CharField(
        _("verification"), max_length=16, choices=VerificationStatus.choices,
        default=VerificationStatus.NONE, db_index=True,
    )
    rejection_reason = models.CharField(_("reason"), max_length=500, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("census record")
        verbose_name_plural = _("census records")

    @property
    def is_verified(self) -> bool:
        return self.status == VerificationStatus.VERIFIED


class ProvenanceLabel(models.TextChoices):
    """The official label and the collective marks a product may carry."""

    ARTISANAT_ALGERIE = "artisanat_algerie", _("Artisanat d'Algérie (official label)")
    CUIVRE_CONSTANTINE = "cuivre_constantine", _("Copper of Constantine")
    TAPIS_GHARDAIA = "tapis_ghardaia", _("Carpets of Ghardaïa")
    BIJOU_KABYLIE = "bijou_kabylie", _("Silver jewellery of Kabylia")
    POTERIE_KABYLIE = "poterie_kabylie", _("Pottery of Kabylia")
    TAPIS_BABAR = "tapis_babar", _("Carpets of Babar")
    BRODERIE_TLEMCEN = "broderie_tlemcen", _("Embroidery of Tlemcen")


class Availability(models.TextChoices):
    IN_STOCK = "in_stock", _("In stock")
    MADE_TO_ORDER = "made_to_order", _("Made to order")


class ProductStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    SOLD_OUT = "sold_out", _("Sold out")
    HIDDEN = "hidden", _("Hidden by moderators")


class Product(models.Model):
    artisan = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="products"
    )
    title = models.CharField(_("title"), max_length=140)
    description = models.TextField(_("description"), max_length=4000, blank=True)
    # None means "price on request".
    price_dzd = models.PositiveIntegerField(_("price (DZD)"), null=True, blank=True)
    materials = models.CharField(_("materials"), max_length=300, blank=True)
    availability = models.CharField(
        _("availability"), max_length=16, choices=Availability.choices, default=Availability.IN_STOCK
    )
    labels = models.JSONField(_("provenance labels"), default=list, blank=True)
    # How long making one takes, in days (None: not said).
    making_days = models.PositiveSmallIntegerField(_("making time (days)"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=ProductStatus.choices, default=ProductStatus.PUBLISHED
    )
    # The short public code of its authenticity tag (/a/<code>), made when its verified
    # artisan first prints one; None until then.
    auth_code = models.CharField(max_length=12, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # When his followers were told of the piece (`services.new_piece_followers_tell`): once.
    followers_told_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        indexes = [models.Index(fields=["artisan", "status", "-id"], name="registry_product_store")]

    @property
    def price_on_request(self) -> bool:
        return self.price_dzd is None

    def __str__(self) -> str:
        return self.title


class ProductPhoto(models.Model):
    """A validated, re-encoded photo of a product, with its thumbnail."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(upload_to="registry/products/")
    thumbnail = models.ImageField(upload_to="registry/products/thumbs/")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    position = models.PositiveSmallIntegerField(default=0)
    # What the photo shows, for people who cannot see it (the title is the fallback).
    alt_text = models.CharField(_("description of the photo"), max_length=200, blank=True)

    class Meta:
        ordering = ["position", "id"]


class ProductReport(models.Model):
    class Reason(models.TextChoices):
        COUNTERFEIT = "counterfeit", _("Counterfeit or false label")
        ABUSE = "abuse", _("Abusive or offensive")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DISMISSED = "dismissed", _("Dismissed")
        ACTIONED = "actioned", _("Product hidden")

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    text = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "reporter"], condition=Q(status="open"),
                name="registry_one_open_report_per_member",
            )
        ]


class Material(models.TextChoices):
    """The raw materials of the exchange (anything else: `other` and the free text)."""

    CLAY = "clay", _("Clay")
    WOOL = "wool", _("Wool")
    COPPER = "copper", _("Copper")
    SILVER = "silver", _("Silver")
    LEATHER = "leather", _("Leather")
    WOOD = "wood", _("Wood")
    ALFA = "alfa", _("Alfa, doum and palm")
    GLASS = "glass", _("Glass")
    THREAD = "thread", _("Thread and silk")
    DYE = "dye", _("Dyes")
    CORAL = "coral", _("Coral")
    OTHER = "other", _("Other")


class Unit(models.TextChoices):
    KG = "kg", _("kg")
    TONNE = "t", _("tonnes")
    METRE = "m", _("metres")
    SQUARE_METRE = "m2", _("square metres")
    LITRE = "l", _("litres")
    PIECE = "piece", _("pieces")


class ExchangeKind(models.TextChoices):
    OFFER = "offer", _("Offer")
    NEED = "need", _("Need")


class ExchangePost(models.Model):
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_posts"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=ExchangeKind.choices)
    material = models.CharField(_("material"), max_length=16, choices=Material.choices)
    detail = models.CharField(_("details"), max_length=300, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=2)
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices)
    wilaya = models.ForeignKey(Wilaya, on_delete=models.PROTECT, related_name="+")
    price_dzd = models.PositiveIntegerField(_("price (DZD)"), null=True, blank=True)
    barter = models.BooleanField(_("open to barter"), default=False)
    expires_at = models.DateTimeField(_("expires"))
    closed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["material", "kind", "wilaya"], name="registry_exchange_match")]

    def is_open(self) -> bool:
        return not self.closed and self.expires_at > timezone.now()


class Enquiry(models.Model):
    """A buyer without an account who asked about a product: who he is and how to reach
    him. The conversation itself is the artisan's inbox room; the buyer reads and answers
    it at a signed link (`registry.selectors.enquiry_link`), and what the artisan writes
    there is e-mailed to him (`registry.tasks.enquiry_replies_mail`).
    """

    room = models.OneToOneField("rooms.Room", on_delete=models.CASCADE, related_name="enquiry")
    product = models.ForeignKey(Product, null=True, on_delete=models.SET_NULL, related_name="enquiries")
    name = models.CharField(max_length=80)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True)
    language = models.CharField(max_length=8, default="ar")
    #: Scheme and host the buyer wrote from, for the links in his e-mails.
    site = models.CharField(max_length=200, blank=True)
    #: The room's last message already e-mailed to the buyer (or written by him).
    mailed_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)


class Favourite(models.Model):
    """A member keeps a product to find it again; its artisan sees how many do."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "product"], name="registry_favourite_once")]
        indexes = [models.Index(fields=["user", "-id"], name="registry_favourite_mine")]


class Follow(models.Model):
    """A member follows an artisan (his storefront); the artisan sees how many do."""

    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    artisan = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "artisan"], name="registry_follow_once"),
            models.CheckConstraint(condition=~Q(follower=models.F("artisan")), name="registry_follow_not_self"),
        ]
        indexes = [models.Index(fields=["follower", "-id"], name="registry_follow_mine")]
