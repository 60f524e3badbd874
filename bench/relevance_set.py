"""The directory search's relevance set: a small country of artisans and the queries a buyer types.

Each query is written as people write it — Arabic script, French, or Darija in
Latin letters (with its usual spellings and typos) — with the usernames any of
which is a right answer. A query is a hit when one of them is among the first
three results. `relevance_measure()` returns the hit rate; the target is 90 %.

Used by `tests/registry/test_relevance.py` (SQLite and PostgreSQL) and by
`bench/directory.py` (`relevance_top3_pct`), on a database holding this corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

# username, display name, trade slug, wilaya code, commune, verified, bio, products
CORPUS: list[tuple[str, str, str, int, str, bool, str, list[str]]] = [
    ("rel_nadir", "نذير بومدين", "copperware", 13, "Tlemcen", True,
     "Dinandier à Tlemcen depuis 1990 : plateaux et lanternes ciselés.",
     ["Plateau en cuivre ciselé", "فانوس نحاسي"]),
    ("rel_salim", "Salim Bencheikh", "copperware", 25, "Constantine", True,
     "Cuivre de Constantine, sinia et mibkhara martelées.", ["Sinia en cuivre jaune"]),
    ("rel_fatima", "Fatima Zohra Bensaid", "embroidery-traditional-dress", 13, "Tlemcen", True,
     "Broderie au fil d'or, karakou et chedda de Tlemcen.", ["Chedda tlemcénienne brodée"]),
    ("rel_fatma", "فاطمة حمادي", "carpets-weaving", 47, "Beni Isguen", True,
     "زرابي غرداية منسوجة يدويا بالصوف الطبيعي.", ["زربية بني يزقن"]),
    ("rel_amina", "Amina Ait Ahmed", "pottery-ceramics", 15, "Maatkas", False,
     "Poterie kabyle peinte à la main.", ["Jarre kabyle peinte"]),
    ("rel_yacine", "ياسين قاسمي", "woodwork-marquetry", 16, "La Casbah", True,
     "Moucharabieh et menuiserie d'art de la Casbah.", ["Moucharabieh en cèdre"]),
    ("rel_karima", "Karima Ouali", "silver-jewellery", 15, "Beni Yenni", True,
     "Bijoux kabyles en argent émaillé et corail.", ["Fibule en argent émaillé"]),
    ("rel_mourad", "مراد زروقي", "leather-saddlery", 7, "Biskra", False,
     "سراجة وجلود تقليدية للفروسية.", ["سرج فرس مطرز"]),
    ("rel_houria", "Houria Chaabane", "basketry", 32, "El Bayadh", False,
     "Vannerie en alfa et doum, paniers et chapeaux.", ["Panier en alfa"]),
    ("rel_rachid", "رشيد بن علي", "glass", 31, "Oran", True,
     "زجاج ملون ونوافذ معشقة.", ["نافذة زجاج ملون"]),
    ("rel_mohammed", "Mohammed Tlemçani", "calligraphy", 13, "Nedroma", False,
     "Calligraphe, diwani et maghribi sur papier et bois.", ["Tableau calligraphié"]),
    ("rel_djamel", "جمال حداد", "wrought-iron", 9, "Blida", True,
     "Ferronnerie d'art, rampes et lanternes.", ["Lanterne en fer forgé"]),
    ("rel_zineb", "Zineb Mebarki", "gold-jewellery", 19, "Sétif", True,
     "Bijouterie en or, mkhabel et tassa sétifiennes.", ["Mkhabel en or"]),
    ("rel_aicha", "عائشة براهيمي", "pottery-ceramics", 31, "Oran", True,
     "فخار وخزف مطلي بالألوان.", ["طاجين فخار"]),
    ("rel_walid", "Walid Kaci", "zellige-mosaic", 16, "Alger", False,
     "Zellige et mosaïque pour fontaines et patios.", ["Table en zellige"]),
    ("rel_samira", "سميرة منصوري", "tailoring", 25, "Constantine", True,
     "خياطة القندورة القسنطينية.", ["قندورة قطيفة"]),
    ("rel_omar", "Omar Slimani", "carpets-weaving", 5, "Babar", True,
     "Tapis de Babar tissés en laine, motifs chaouis.", ["Tapis de Babar"]),
    ("rel_nassima", "Nassima Larbi", "plaster-carving", 13, "Tlemcen", False,
     "Sculpture sur plâtre, arabesques andalouses.", ["Panneau en plâtre sculpté"]),
    ("rel_farid", "فريد زياني", "stone-carving", 22, "Sidi Bel Abbès", False,
     "نحت الحجر والرخام.", ["حوض رخام منحوت"]),
    ("rel_meriem", "Meriem Toumi", "embroidery-traditional-dress", 16, "Alger", False,
     "Broderie mejboud et karakou algérois.", ["Karakou brodé au fil d'or"]),
    ("rel_lydia", "Lydia Haddad", "pottery-ceramics", 6, "Béjaïa", True,
     "Céramique contemporaine inspirée de la poterie kabyle.", ["Bol en céramique"]),
    ("rel_kamel", "كمال شريف", "shoemaking", 31, "Oran", False,
     "صناعة الأحذية الجلدية يدويا.", ["حذاء جلد"]),
    ("rel_nabila", "Nabila Saidi", "basketry", 47, "Metlili", False,
     "Vannerie en palmier, tbag et couffins.", ["Tbag en palmier"]),
    ("rel_hakim", "Hakim Rahmani", "carpentry", 31, "Oran", True,
     "Menuiserie, portes et meubles en bois massif.", ["Coffre en bois d'olivier"]),
]

# query, script ("ar", "fr" or "darija"), usernames any of which is a right answer
QUERIES: list[tuple[str, str, tuple[str, ...]]] = [
    ("nhas tlemcen", "darija", ("rel_nadir",)),
    ("نحاس", "ar", ("rel_nadir", "rel_salim")),
    ("cuivre", "fr", ("rel_nadir", "rel_salim")),
    ("cuivre tlemcen", "fr", ("rel_nadir",)),
    ("نحاس تلمسان", "ar", ("rel_nadir",)),
    ("النحاسيات", "ar", ("rel_nadir", "rel_salim")),
    ("dinanderie constantine", "fr", ("rel_salim",)),
    ("nhas qsentina", "darija", ("rel_salim",)),
    ("nadir boumediene", "darija", ("rel_nadir",)),
    ("نذير", "ar", ("rel_nadir",)),
    ("fatima bensaid", "fr", ("rel_fatima",)),
    ("فاطمة", "ar", ("rel_fatima", "rel_fatma")),
    ("fatma", "darija", ("rel_fatma", "rel_fatima")),
    ("فاطمه حمادي", "ar", ("rel_fatma",)),
    ("fatma hamadi", "darija", ("rel_fatma",)),
    ("زرابي غرداية", "ar", ("rel_fatma",)),
    ("tapis ghardaia", "fr", ("rel_fatma",)),
    ("zerbia ghardaia", "darija", ("rel_fatma",)),
    ("tapis babar", "fr", ("rel_omar",)),
    ("broderie tlemcen", "fr", ("rel_fatima",)),
    ("chedda", "fr", ("rel_fatima",)),
    ("karakou", "fr", ("rel_meriem", "rel_fatima")),
    ("amine", "darija", ("rel_amina",)),
    ("amina", "fr", ("rel_amina",)),
    ("أمينة", "ar", ("rel_amina",)),
    ("poterie kabyle", "fr", ("rel_amina", "rel_lydia")),
    ("poterie tizi ouzou", "fr", ("rel_amina",)),
    ("فخار وهران", "ar", ("rel_aicha",)),
    ("fekhar", "darija", ("rel_aicha", "rel_amina", "rel_lydia")),
    ("ceramique bejaia", "fr", ("rel_lydia",)),
    ("céramique", "fr", ("rel_lydia", "rel_aicha")),
    ("yacine", "darija", ("rel_yacine",)),
    ("ياسين", "ar", ("rel_yacine",)),
    ("moucharabieh", "fr", ("rel_yacine",)),
    ("bijoux argent kabylie", "fr", ("rel_karima",)),
    ("fedda", "darija", ("rel_karima",)),
    ("حلي فضية", "ar", ("rel_karima",)),
    ("karima ouali", "fr", ("rel_karima",)),
    ("mourad", "darija", ("rel_mourad",)),
    ("سراجة بسكرة", "ar", ("rel_mourad",)),
    ("sellerie biskra", "fr", ("rel_mourad",)),
    ("vannerie alfa", "fr", ("rel_houria",)),
    ("houria", "darija", ("rel_houria",)),
    ("حورية", "ar", ("rel_houria",)),
    ("rachid", "darija", ("rel_rachid",)),
    ("زجاج وهران", "ar", ("rel_rachid",)),
    ("vitrail oran", "fr", ("rel_rachid",)),
    ("calligraphie", "fr", ("rel_mohammed",)),
    ("mohamed", "darija", ("rel_mohammed",)),
    ("خط عربي", "ar", ("rel_mohammed",)),
    ("djamel haddad", "darija", ("rel_djamel",)),
    ("ferronnerie blida", "fr", ("rel_djamel",)),
    ("حدادة فنية البليدة", "ar", ("rel_djamel",)),
    ("bijouterie or setif", "fr", ("rel_zineb",)),
    ("ذهب سطيف", "ar", ("rel_zineb",)),
    ("zellige", "fr", ("rel_walid",)),
    ("qandoura constantine", "darija", ("rel_samira",)),
    ("خياطة قسنطينة", "ar", ("rel_samira",)),
    ("samira mansouri", "darija", ("rel_samira",)),
    ("platre sculpte", "fr", ("rel_nassima",)),
    ("نحت الحجر", "ar", ("rel_farid",)),
    ("sidi bel abbes", "fr", ("rel_farid",)),
    ("chaussures oran", "fr", ("rel_kamel",)),
    ("tbag", "darija", ("rel_nabila",)),
    ("menuiserie oran", "fr", ("rel_hakim",)),
    ("tlemcan", "darija", ("rel_nadir", "rel_fatima", "rel_nassima", "rel_mohammed")),
    ("constantin", "fr", ("rel_salim", "rel_samira")),
    ("ghardaïa", "fr", ("rel_fatma", "rel_nabila")),
]


def corpus_load() -> None:
    """Write the corpus (idempotent: artisans already there are left as they are)."""
    from django.db import transaction

    from hub.models import ArtisanProfile, Trade, User, Wilaya
    from registry.models import Census, Product, VerificationStatus

    trades = {t.slug: t for t in Trade.objects.all()}
    wilayas = {w.code: w for w in Wilaya.objects.all()}
    with transaction.atomic():
        for username, name, trade, code, commune, verified, bio, products in CORPUS:
            if User.objects.filter(username=username).exists():
                continue
            user = User.objects.create_user(username=username, password=None)
            profile = ArtisanProfile.objects.create(
                user=user, display_name=name, wilaya=wilayas[code], bio=bio, languages=["ar", "fr"]
            )
            profile.trades.set([trades[trade]])
            Census.objects.create(
                user=user, commune=commune,
                status=VerificationStatus.VERIFIED if verified else VerificationStatus.NONE,
            )
            for title in products:
                Product.objects.create(artisan=user, title=title, status="published")


@dataclass(frozen=True)
class Relevance:
    hits: int
    total: int
    by_script: dict[str, tuple[int, int]]
    misses: list[tuple[str, list[str]]]

    @property
    def top3_pct(self) -> float:
        return round(100 * self.hits / self.total, 1)


def relevance_measure() -> Relevance:
    """Run every query as an anonymous buyer; a hit when a right answer is in the first three."""
    from registry.search import artisan_search

    hits = 0
    by_script: dict[str, tuple[int, int]] = {}
    misses = []
    for query, script, expected in QUERIES:
        found = [c.username for c in artisan_search(query=query, page_size=3, with_facets=False).items]
        hit = any(name in found for name in expected)
        hits += hit
        got, total = by_script.get(script, (0, 0))
        by_script[script] = (got + hit, total + 1)
        if not hit:
            misses.append((query, found))
    return Relevance(hits=hits, total=len(QUERIES), by_script=by_script, misses=misses)
