"""The 58 wilayas of Algeria in force (law 84-09 as amended in 2019), and their neighbours.

The eleven wilayas announced in November 2025 are not here: when their law
takes effect they are added by a later data migration as rows naming their
`parent` and `valid_from`, with no code change.

Neighbours are the wilayas that share a land border. The northern (Tell and
High Plateaux) wilayas are complete; in the Sahara, only the borders known
with certainty are listed.
"""

from django.db import migrations

# code, French, Arabic, English (blank: as French), Tamazight (blank: unknown)
WILAYAS = [
    (1, "Adrar", "أدرار", "", ""),
    (2, "Chlef", "الشلف", "", ""),
    (3, "Laghouat", "الأغواط", "", ""),
    (4, "Oum El Bouaghi", "أم البواقي", "", ""),
    (5, "Batna", "باتنة", "", ""),
    (6, "Béjaïa", "بجاية", "Bejaia", "Bgayet"),
    (7, "Biskra", "بسكرة", "", ""),
    (8, "Béchar", "بشار", "Bechar", ""),
    (9, "Blida", "البليدة", "", ""),
    (10, "Bouira", "البويرة", "", "Tubiret"),
    (11, "Tamanrasset", "تمنراست", "", "Tamanɣest"),
    (12, "Tébessa", "تبسة", "Tebessa", ""),
    (13, "Tlemcen", "تلمسان", "", ""),
    (14, "Tiaret", "تيارت", "", ""),
    (15, "Tizi Ouzou", "تيزي وزو", "", "Tizi Wezzu"),
    (16, "Alger", "الجزائر", "Algiers", "Dzayer"),
    (17, "Djelfa", "الجلفة", "", ""),
    (18, "Jijel", "جيجل", "", ""),
    (19, "Sétif", "سطيف", "Setif", ""),
    (20, "Saïda", "سعيدة", "Saida", ""),
    (21, "Skikda", "سكيكدة", "", ""),
    (22, "Sidi Bel Abbès", "سيدي بلعباس", "Sidi Bel Abbes", ""),
    (23, "Annaba", "عنابة", "", ""),
    (24, "Guelma", "قالمة", "", ""),
    (25, "Constantine", "قسنطينة", "", ""),
    (26, "Médéa", "المدية", "Medea", ""),
    (27, "Mostaganem", "مستغانم", "", ""),
    (28, "M'Sila", "المسيلة", "", ""),
    (29, "Mascara", "معسكر", "", ""),
    (30, "Ouargla", "ورقلة", "", ""),
    (31, "Oran", "وهران", "", ""),
    (32, "El Bayadh", "البيض", "", ""),
    (33, "Illizi", "إليزي", "", ""),
    (34, "Bordj Bou Arréridj", "برج بوعريريج", "Bordj Bou Arreridj", ""),
    (35, "Boumerdès", "بومرداس", "Boumerdes", ""),
    (36, "El Tarf", "الطارف", "", ""),
    (37, "Tindouf", "تندوف", "", ""),
    (38, "Tissemsilt", "تيسمسيلت", "", ""),
    (39, "El Oued", "الوادي", "", ""),
    (40, "Khenchela", "خنشلة", "", ""),
    (41, "Souk Ahras", "سوق أهراس", "", ""),
    (42, "Tipaza", "تيبازة", "", ""),
    (43, "Mila", "ميلة", "", ""),
    (44, "Aïn Defla", "عين الدفلى", "Ain Defla", ""),
    (45, "Naâma", "النعامة", "Naama", ""),
    (46, "Aïn Témouchent", "عين تموشنت", "Ain Temouchent", ""),
    (47, "Ghardaïa", "غرداية", "Ghardaia", "Taɣerdayt"),
    (48, "Relizane", "غليزان", "", ""),
    (49, "Timimoun", "تيميمون", "", ""),
    (50, "Bordj Badji Mokhtar", "برج باجي مختار", "", ""),
    (51, "Ouled Djellal", "أولاد جلال", "", ""),
    (52, "Béni Abbès", "بني عباس", "Beni Abbes", ""),
    (53, "In Salah", "عين صالح", "", ""),
    (54, "In Guezzam", "عين قزام", "", ""),
    (55, "Touggourt", "تقرت", "", ""),
    (56, "Djanet", "جانت", "", ""),
    (57, "El M'Ghair", "المغير", "", ""),
    (58, "El Meniaa", "المنيعة", "", ""),
]

# Each wilaya with the neighbours of higher code (the relation is symmetrical).
NEIGHBOURS = {
    1: [37, 49, 50, 52, 53],
    2: [27, 38, 42, 44, 48],
    3: [14, 17, 32, 47],
    4: [5, 12, 24, 25, 40, 41, 43],
    5: [7, 19, 28, 40, 43],
    6: [10, 15, 18, 19, 34],
    7: [28, 40, 51, 57],
    8: [32, 45, 52],
    9: [10, 16, 26, 35, 42, 44],
    10: [15, 26, 28, 34, 35],
    11: [50, 53, 54, 56],
    12: [39, 40, 41],
    13: [22, 45, 46],
    14: [17, 20, 26, 29, 32, 38, 48],
    15: [35],
    16: [35, 42],
    17: [26, 28, 47, 51],
    18: [19, 21, 43],
    19: [28, 34, 43],
    20: [22, 29, 32],
    21: [23, 24, 25, 43],
    22: [29, 31, 32, 45, 46],
    23: [24, 36],
    24: [25, 36, 41],
    25: [43],
    26: [28, 38, 44],
    27: [29, 31, 48],
    28: [34],
    29: [31, 48],
    30: [33, 47, 55],
    31: [46],
    32: [45, 47],
    33: [53, 56],
    36: [41],
    38: [44, 48],
    39: [55, 57],
    47: [58],
    49: [52],
    53: [58],
    55: [57],
}


def load(apps, schema_editor):
    Wilaya = apps.get_model("hub", "Wilaya")
    for code, fr, ar, en, ber in WILAYAS:
        Wilaya.objects.update_or_create(
            code=code, defaults={"name_fr": fr, "name_ar": ar, "name_en": en or fr, "name_ber": ber}
        )
    by_code = {w.code: w for w in Wilaya.objects.filter(code__lte=58)}
    for code, others in NEIGHBOURS.items():
        # Historical models lose `symmetrical`: write both directions.
        by_code[code].neighbours.add(*(by_code[o] for o in others))
        for other in others:
            by_code[other].neighbours.add(by_code[code])


def unload(apps, schema_editor):
    Wilaya = apps.get_model("hub", "Wilaya")
    official = Wilaya.objects.filter(code__in=[w[0] for w in WILAYAS], parent__isnull=True)
    for wilaya in official:
        wilaya.neighbours.clear()
    official.delete()


class Migration(migrations.Migration):
    dependencies = [("hub", "0001_initial")]

    operations = [migrations.RunPython(load, unload)]
