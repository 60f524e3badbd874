"""`make demo`: a believable country for a first look, on top of the first cast of
`rooms.demo` (Amina, Yacine, Nadia, Karim, Idir, Meriem and their rooms).

Artisans in twenty wilayas (verified or not, with a commune and a public WhatsApp number),
pieces with photos (drawn here: a glaze of the trade's colour with a pattern, no files to
ship), raw-material offers and needs, public gatherings with answers, and rooms whose
conversations carry on into the last hours.

Idempotent: users by username, pieces by artisan and title, posts by author and material,
gatherings by room and title, messages by their client id.
"""

from __future__ import annotations

import io
import random
import zlib
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from gatherings import services as gathering_services
from gatherings.models import Gathering, RsvpStatus, Visibility
from hub import services as hub_services
from hub.models import Trade, User, Wilaya
from registry import services as registry_services
from registry.models import Census, ExchangePost, Product, VerificationStatus
from rooms import services as room_services
from rooms.demo import PERSONAS, Persona, seed_demo
from rooms.models import Message, Room, RoomKind


@dataclass(frozen=True)
class Maker:
    username: str
    display_name: str
    trade: str
    wilaya: int
    commune: str
    bio: str
    verified: bool
    pieces: tuple[tuple[str, int | None, str], ...]  # title, price in DZD (None: on request), material

    @property
    def password(self) -> str:
        return f"{self.username}-atelier-2025"


MAKERS = [
    Maker("nadir", "نذير بومدين", "copperware", 13, "Tlemcen", "نحّاس من تلمسان، صواني وأباريق منقوشة باليد.", True,
          (("Plateau en cuivre ciselé", 12000, "cuivre"), ("إبريق نحاسي تلمساني", 8500, "نحاس"))),
    Maker("fatima", "Fatima Zohra Benali", "pottery-ceramics", 13, "Nedroma", "Poterie de Nedroma, engobes rouges et noirs.", True,
          (("Jarre de Nedroma", 6500, "argile rouge"), ("Tajine émaillé", 3200, "argile"))),
    Maker("lounes", "Lounès Aït Mansour", "silver-jewellery", 15, "Beni Yenni", "Bijoux kabyles en argent émaillé, corail.", True,
          (("Fibule d'At Yenni", 18000, "argent, émail, corail"), ("Bracelet ddah", 24000, "argent"))),
    Maker("taos", "Taos Hamidi", "pottery-ceramics", 15, "Maâtkas", "Poterie kabyle modelée à la main, décors au manganèse.", False,
          (("Cruche kabyle", 4500, "argile"), ("Lampe à huile", 1800, "argile"))),
    Maker("bachir", "بشير قاسمي", "carpets-weaving", 47, "Beni Isguen", "زرابي مزاب بالألوان الطبيعية.", True,
          (("Tapis du Mzab", 45000, "laine"), ("زربية غرداية صغيرة", 15000, "صوف"))),
    Maker("khadidja", "Khadidja Ouled Naïl", "embroidery-traditional-dress", 17, "Djelfa", "Broderie au fil d'or, robes naïli.", False,
          (("Robe naïli brodée", None, "velours, fil d'or"),)),
    Maker("mustapha", "مصطفى حداد", "leather-saddlery", 3, "Laghouat", "سروج وجلود مطرزة للفروسية.", True,
          (("Selle de fantasia", None, "cuir"), ("Ceinture brodée", 5500, "cuir"))),
    Maker("samia", "Samia Cherif", "basketry", 7, "Biskra", "Vannerie en palmier, paniers et chapeaux.", False,
          (("Panier en palmier", 2200, "palmier"),)),
    Maker("djamel", "Djamel Rahmani", "woodwork-marquetry", 16, "Casbah", "Menuisier d'art, portes et coffres de la Casbah.", True,
          (("Coffre de mariée", 38000, "cèdre"), ("Miroir marqueté", 9000, "noyer"))),
    Maker("souad", "سعاد بن يوسف", "calligraphy", 16, "Bab El Oued", "خطاطة، لوحات بالخط المغربي والثلث.", False,
          (("لوحة بالخط المغربي", 7000, "حبر، ورق"),)),
    Maker("hakim", "Hakim Zerrouki", "copperware", 25, "Constantine", "Dinandier constantinois, plateaux et sniwa.", True,
          (("Sniwa de Constantine", 15000, "cuivre jaune"), ("Mehbes en cuivre", 6000, "cuivre"))),
    Maker("warda", "Warda Bouzid", "embroidery-traditional-dress", 25, "Constantine", "Gandoura constantinoise au fil d'or (majboud).", True,
          (("Gandoura en majboud", None, "velours, fil d'or"),)),
    Maker("rachid", "رشيد طالبي", "musical-instruments", 31, "Oran", "صانع آلات: مندول وقويطرة ودربوكة.", False,
          (("Mandole oranais", 55000, "noyer, os"), ("دربوكة فخار", 4000, "فخار، جلد"))),
    Maker("leila", "Leïla Mebarki", "glass", 2, "Ténès", "Verre soufflé et vitraux aux motifs andalous.", False,
          (("Lanterne en verre soufflé", 8000, "verre, laiton"),)),
    Maker("omar", "Omar Belaïd", "wrought-iron", 9, "Blida", "Ferronnerie d'art, grilles et lustres.", False,
          (("Lustre en fer forgé", 21000, "fer"),)),
    Maker("zineb", "زينب عمراني", "traditional-food", 6, "Béjaïa", "زيت زيتون وعسل من جبال بجاية.", True,
          (("Huile d'olive de Kabylie (1 l)", 1200, "olives"),)),
    Maker("yasmine", "Yasmine Touati", "soap-cosmetics", 23, "Annaba", "Savons au lentisque et à l'huile d'olive.", False,
          (("Savon au lentisque", 450, "huile de lentisque"),)),
    Maker("brahim", "ابراهيم قاسم", "stone-carving", 11, "Tamanrasset", "نحت على الحجر ومجوهرات طوارق.", True,
          (("Croix d'Agadez en argent", 9500, "argent"), ("Pilon en pierre", 3000, "granite"))),
    Maker("kamel", "Kamel Saidi", "zellige-mosaic", 19, "Sétif", "Zellige et mosaïque pour patios et fontaines.", False,
          (("Table en zellige", 27000, "zellige, fer"),)),
    Maker("houria", "Houria Kaci", "carpets-weaving", 12, "Tébessa", "Tapis nememcha tissés sur métier vertical.", True,
          (("Tapis nememcha", 60000, "laine"),)),
    Maker("salah", "صالح بن عمر", "pottery-ceramics", 30, "Ouargla", "فخار الجنوب وأواني الطين المشوي.", False,
          (("Gargoulette du Sud", 1500, "argile"),)),
    Maker("nawel", "Nawel Mansouri", "gold-jewellery", 5, "Batna", "Bijoux chaouis en or et argent.", False,
          (("Boucles chaouies", 32000, "or"),)),
    Maker("anis", "Anis Ouali", "leather-saddlery", 34, "Bordj Bou Arréridj", "Maroquinerie : sacs, babouches, étuis.", True,
          (("Sac en cuir tanné", 7800, "cuir de chèvre"), ("Babouches brodées", 3500, "cuir"))),
    Maker("aicha", "عائشة مرابط", "basketry", 39, "El Oued", "سلال وقفف من سعف النخيل.", False,
          (("قفة من سعف النخيل", 1300, "سعف النخيل"),)),
]

# The colour of each trade's pieces (a glaze, a wool, a metal).
TRADE_COLOURS = {
    "copperware": ("#b87333", "#f3c98b"), "pottery-ceramics": ("#a0522d", "#f2d2a9"),
    "silver-jewellery": ("#8c9aa6", "#e6ecf0"), "gold-jewellery": ("#b8860b", "#f7e08a"),
    "carpets-weaving": ("#8b1e2d", "#e8b04a"), "embroidery-traditional-dress": ("#4b1f5e", "#d4af37"),
    "leather-saddlery": ("#6b3e1f", "#d9a066"), "basketry": ("#b59a5a", "#efe3b8"),
    "woodwork-marquetry": ("#5c3b1e", "#c79a5d"), "calligraphy": ("#1d2b3a", "#f1e7d0"),
    "musical-instruments": ("#4a2c17", "#e0b07a"), "glass": ("#2f7f8f", "#bfe8ef"),
    "wrought-iron": ("#2e2e2e", "#9a9a9a"), "traditional-food": ("#6b7d1f", "#e9d66b"),
    "soap-cosmetics": ("#5d7d5a", "#e8f0d8"), "stone-carving": ("#6e6259", "#d8cfc4"),
    "zellige-mosaic": ("#1f5f8b", "#f2f2f2"),
}

# (username, kind, material, quantity, unit, wilaya code, detail, price)
POSTS = [
    ("amina", "need", "clay", "200", "kg", 13, "Argile rouge fine pour tajines", None),
    ("karim", "offer", "clay", "500", "kg", 25, "Terre de Mila, livrable à Tlemcen", 40),
    ("bachir", "offer", "wool", "80", "kg", 47, "صوف مغسول ومصبوغ بالنيلة", 1200),
    ("houria", "need", "wool", "30", "kg", 12, "Laine cardée, couleurs naturelles", None),
    ("nadir", "need", "copper", "40", "kg", 13, "Feuilles de cuivre rouge 0,8 mm", None),
    ("hakim", "offer", "copper", "60", "kg", 25, "Chutes de cuivre jaune propres", 900),
    ("anis", "offer", "leather", "50", "m2", 34, "Cuir de chèvre tanné végétal", 2500),
    ("lounes", "need", "silver", "1", "kg", 15, "Argent 925 en fil", None),
]

Where = tuple[str, int | str]  # ("region", wilaya code) or ("guild", trade slug)

# (room, host username, title, days from now, hour, capacity)
GATHERINGS: list[tuple[Where, str, str, int, int, int | None]] = [
    (("region", 13), "nadia", "Salon des métiers d'art de Tlemcen", 5, 10, None),
    (("guild", "copperware"), "hakim", "Atelier ouvert : ciselure du cuivre", 9, 15, 12),
    (("region", 15), "lounes", "Rencontre des bijoutiers d'At Yenni", 12, 18, None),
]

# A conversation that goes on in the Tlemcen room and the copper guild: (client id, author,
# room, minutes ago, text).
LIVE: list[tuple[str, str, Where, int, str]] = [
    ("live-1", "nadir", ("region", 13), 95, "صباح الخير، من سيشارك في صالون الحرف يوم السبت؟"),
    ("live-2", "fatima", ("region", 13), 80, "Moi ! J'apporte mes jarres de Nedroma."),
    ("live-3", "amina", ("region", 13), 62, "Je réserve une table à côté de Fatima 🙂"),
    ("live-4", "nadia", ("region", 13), 41, "تذكير: التسجيل في الصالون مفتوح حتى الخميس."),
    ("live-5", "nadir", ("guild", "copperware"), 33, "Quelqu'un a un fournisseur de feuilles de cuivre rouge à Oran ?"),
    ("live-6", "hakim", ("guild", "copperware"), 21, "J'ai des chutes propres à Constantine, voir ma petite annonce."),
    ("live-7", "yacine", ("guild", "copperware"), 12, "نعم، عند حكيم نوعية ممتازة."),
    ("live-8", "fatima", ("region", 13), 4, "À samedi alors ! Les photos du stand arrivent."),
]


def piece_photo(trade: str, seed: int) -> bytes:
    """A 640 × 480 JPEG: a glaze of the trade's colour with a pattern of rings and lines."""
    dark, light = TRADE_COLOURS.get(trade, ("#7a5c3e", "#e8d9c4"))
    rng = random.Random(seed)
    image = Image.new("RGB", (640, 480), light)
    draw = ImageDraw.Draw(image)
    cx, cy = rng.randint(260, 380), rng.randint(200, 280)
    for radius in range(220, 20, -rng.randint(24, 40)):
        draw.ellipse((cx - radius, cy - radius * 0.8, cx + radius, cy + radius * 0.8), outline=dark, width=6)
    for x in range(0, 640, rng.randint(30, 60)):
        draw.line((x, 440, x + 40, 480), fill=dark, width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82)
    return out.getvalue()


def _room(where: Where) -> Room:
    kind, key = where
    if kind == "region":
        return Room.objects.get_or_create(kind=RoomKind.REGION, wilaya=Wilaya.objects.get(code=key))[0]
    return Room.objects.get_or_create(kind=RoomKind.GUILD, trade=Trade.objects.get(slug=key))[0]


def _maker(maker: Maker) -> User:
    user = User.objects.filter(username=maker.username).first()
    if user is None:
        user = hub_services.artisan_register(
            username=maker.username, email="", password=maker.password, display_name=maker.display_name,
            wilaya_id=Wilaya.objects.get(code=maker.wilaya).pk,
            trade_ids=[Trade.objects.get(slug=maker.trade).pk], languages=["ar", "fr"],
        )
        hub_services.profile_update(user=user, bio=maker.bio)
        number = f"0{5 + len(maker.username) % 3}{zlib.crc32(maker.username.encode()) % 10**8:08d}"
        registry_services.census_update(
            user=user, commune=maker.commune, whatsapp=number, phone=number, public_channels=["whatsapp", "phone"],
            years_of_practice=5 + len(maker.bio) % 25,
        )
        if maker.verified:
            # Seeding stands in for a moderator's review of a card nobody photographed.
            Census.objects.filter(user=user).update(
                status=VerificationStatus.VERIFIED, card_number=f"{maker.wilaya:02d}/{len(maker.bio) * 37:05d}",
                reviewed_at=timezone.now(),
            )
    return user


def seed_country() -> list[tuple[Persona, bool]]:
    """The first cast (`rooms.demo.seed_demo`), then the country around it (see module doc).

    Returns the first cast with whether each was created by this call.
    """
    now = timezone.now()
    created = seed_demo()
    with transaction.atomic():
        # The first cast wrote yesterday; the conversations below carry on into the last hours.
        for i, message in enumerate(
            Message.objects.filter(client_id__startswith="demo-", created_at__gte=now).order_by("id")
        ):
            Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(days=1) + timedelta(minutes=7 * i))
        users = {u.username: u for u in User.objects.filter(username__in=[p.username for p in PERSONAS])}
        for n, maker in enumerate(MAKERS):
            user = users[maker.username] = _maker(maker)
            for i, (title, price, material) in enumerate(maker.pieces):
                if not Product.objects.filter(artisan=user, title=title).exists():
                    registry_services.product_create(
                        user=user, title=title, price_dzd=price, materials=material, making_days=3 + 4 * i,
                        description=maker.bio, photos=[piece_photo(maker.trade, n * 10 + i)],
                    )
        for username, kind, material, quantity, unit, code, detail, price in POSTS:
            author = users[username]
            if not ExchangePost.objects.filter(author=author, material=material, kind=kind).exists():
                registry_services.exchange_post(
                    user=author, kind=kind, material=material, quantity=quantity, unit=unit,
                    wilaya_id=Wilaya.objects.get(code=code).pk, detail=detail, price_dzd=price,
                    expires_at=now + timedelta(days=60),
                )
        for where, host_name, title, days, hour, capacity in GATHERINGS:
            room = _room(where)
            host = users[host_name]
            scope = {"wilaya_id": room.wilaya_id} if room.wilaya_id else {"trade_id": room.trade_id}
            hub_services.moderator_scope_grant(user=host, **scope)
            gathering = Gathering.objects.filter(room=room, title=title).first()
            if gathering is None:
                start = (now + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
                gathering = gathering_services.gathering_schedule(
                    user=host, room_id=room.pk, title=title, start=start, duration=timedelta(hours=2),
                    agenda=title, capacity=capacity, visibility=Visibility.PUBLIC,
                )
            members = User.objects.filter(memberships__room=room).exclude(pk=host.pk)[:6]
            for i, member in enumerate(members):
                gathering_services.rsvp_set(
                    user=member, gathering_id=gathering.pk, status=RsvpStatus.MAYBE if i % 3 == 2 else RsvpStatus.GOING
                )
        for client_id, author_name, where, minutes, text in LIVE:
            author = users[author_name]
            room = _room(where)
            room_services.send_buckets.reset()  # seeding is not a member typing
            posted = room_services.message_post(user=author, room_id=room.pk, client_id=client_id, text=text)
            if posted.created:
                # A conversation that went on over the last hours, not one written all at once.
                Message.objects.filter(pk=posted.message.id).update(created_at=now - timedelta(minutes=minutes))
    return created
