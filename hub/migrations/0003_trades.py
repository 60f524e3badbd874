"""The three domains of the official crafts nomenclature and the common activities.

The official nomenclature of craft activities sorts them into traditional and
art crafts, production of goods, and production of services.
`activity_code` stays empty here: the official 7-digit codes are filled in
by a later migration from the published register, never guessed.
"""

from django.db import migrations

# code, French, Arabic, English
DOMAINS = [
    (
        "art",
        "Artisanat traditionnel et d'art",
        "الصناعة التقليدية والفنية",
        "Traditional and art crafts",
    ),
    (
        "goods",
        "Artisanat de production de biens",
        "الصناعة التقليدية الحرفية لإنتاج المواد",
        "Crafts producing goods",
    ),
    (
        "services",
        "Artisanat de production de services",
        "الصناعة التقليدية الحرفية للخدمات",
        "Crafts providing services",
    ),
]

# slug, domain code, French, Arabic, English
TRADES = [
    ("pottery-ceramics", "art", "Poterie et céramique", "الفخار والخزف", "Pottery and ceramics"),
    ("carpets-weaving", "art", "Tapis et tissage", "الزرابي والنسيج", "Carpets and weaving"),
    ("copperware", "art", "Dinanderie (cuivre)", "النحاسيات", "Copperware"),
    ("silver-jewellery", "art", "Bijouterie en argent", "الحلي الفضية", "Silver jewellery"),
    ("gold-jewellery", "art", "Bijouterie en or", "الحلي الذهبية", "Gold jewellery"),
    ("leather-saddlery", "art", "Maroquinerie et sellerie", "الجلود والسراجة", "Leather and saddlery"),
    (
        "embroidery-traditional-dress",
        "art",
        "Broderie et habit traditionnel",
        "الطرز واللباس التقليدي",
        "Embroidery and traditional dress",
    ),
    (
        "woodwork-marquetry",
        "art",
        "Travail du bois et marqueterie",
        "النقش على الخشب والترصيع",
        "Woodwork and marquetry",
    ),
    (
        "basketry",
        "art",
        "Vannerie (alfa, doum, palmier)",
        "صناعة السلال (الحلفاء، الدوم، النخيل)",
        "Basketry (alfa, doum, palm)",
    ),
    ("glass", "art", "Verre et vitrail", "الزجاج", "Glass and stained glass"),
    ("stone-carving", "art", "Taille et sculpture de pierre", "نحت الحجر", "Stone carving"),
    ("calligraphy", "art", "Calligraphie", "الخط العربي", "Calligraphy"),
    (
        "illumination-miniature",
        "art",
        "Enluminure et miniature",
        "الزخرفة والمنمنمات",
        "Illumination and miniature",
    ),
    (
        "musical-instruments",
        "art",
        "Lutherie (instruments de musique)",
        "صناعة الآلات الموسيقية",
        "Musical instrument making",
    ),
    ("wrought-iron", "art", "Ferronnerie d'art", "الحدادة الفنية", "Wrought ironwork"),
    ("plaster-carving", "art", "Sculpture sur plâtre", "النقش على الجبس", "Plaster carving"),
    ("zellige-mosaic", "art", "Zellige et mosaïque", "الزليج والفسيفساء", "Zellige and mosaic"),
    ("blacksmithing", "goods", "Forge", "الحدادة", "Blacksmithing"),
    ("tailoring", "goods", "Couture et confection", "الخياطة", "Tailoring"),
    (
        "traditional-bakery-pastry",
        "goods",
        "Boulangerie et pâtisserie traditionnelles",
        "الخبز والحلويات التقليدية",
        "Traditional bakery and pastry",
    ),
    (
        "soap-cosmetics",
        "goods",
        "Savonnerie et cosmétiques naturels",
        "الصابون ومستحضرات التجميل الطبيعية",
        "Soap and natural cosmetics",
    ),
    (
        "distillation",
        "goods",
        "Distillation (eau de rose, de fleur d'oranger)",
        "التقطير (ماء الورد والزهر)",
        "Distillation (rose and orange-blossom water)",
    ),
    ("carpentry", "goods", "Menuiserie", "النجارة", "Carpentry and joinery"),
    ("shoemaking", "goods", "Fabrication de chaussures", "صناعة الأحذية", "Shoemaking"),
    (
        "traditional-food",
        "goods",
        "Produits alimentaires traditionnels",
        "المنتجات الغذائية التقليدية",
        "Traditional food products",
    ),
    ("plumbing", "services", "Plomberie", "الترصيص الصحي", "Plumbing"),
    ("electricity", "services", "Électricité du bâtiment", "كهرباء المباني", "Building electrics"),
    ("mechanics", "services", "Mécanique automobile", "ميكانيك السيارات", "Car mechanics"),
    ("hairdressing", "services", "Coiffure", "الحلاقة والتجميل", "Hairdressing"),
    ("masonry", "services", "Maçonnerie", "البناء", "Masonry"),
    ("house-painting", "services", "Peinture en bâtiment", "طلاء المباني", "House painting"),
    (
        "refrigeration-air-conditioning",
        "services",
        "Froid et climatisation",
        "التبريد والتكييف",
        "Refrigeration and air conditioning",
    ),
    (
        "electronics-repair",
        "services",
        "Réparation d'appareils électroniques",
        "تصليح الأجهزة الإلكترونية",
        "Electronics repair",
    ),
    ("shoe-repair", "services", "Cordonnerie (réparation)", "إصلاح الأحذية", "Shoe repair"),
]


def load(apps, schema_editor):
    TradeDomain = apps.get_model("hub", "TradeDomain")
    Trade = apps.get_model("hub", "Trade")
    domains = {}
    for code, fr, ar, en in DOMAINS:
        domains[code], _ = TradeDomain.objects.update_or_create(
            code=code, defaults={"name_fr": fr, "name_ar": ar, "name_en": en}
        )
    for slug, domain, fr, ar, en in TRADES:
        Trade.objects.update_or_create(
            slug=slug,
            defaults={"domain": domains[domain], "name_fr": fr, "name_ar": ar, "name_en": en},
        )


def unload(apps, schema_editor):
    TradeDomain = apps.get_model("hub", "TradeDomain")
    Trade = apps.get_model("hub", "Trade")
    Trade.objects.filter(slug__in=[t[0] for t in TRADES]).delete()
    TradeDomain.objects.filter(code__in=[d[0] for d in DOMAINS], trades__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("hub", "0002_wilayas")]

    operations = [migrations.RunPython(load, unload)]
