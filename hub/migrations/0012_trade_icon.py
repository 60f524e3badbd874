"""Each trade is drawn with an icon of the sprite (the sign-up's and the profile's trade
pickers); the trades of 0003 get theirs here, by slug; any other keeps the default."""

from django.db import migrations, models

ICONS = {
    "pottery-ceramics": "amphora",
    "carpets-weaving": "grid-3x3",
    "copperware": "cooking-pot",
    "silver-jewellery": "gem",
    "gold-jewellery": "crown",
    "leather-saddlery": "handbag",
    "embroidery-traditional-dress": "shirt",
    "woodwork-marquetry": "axe",
    "basketry": "shopping-basket",
    "glass": "wine",
    "stone-carving": "pickaxe",
    "calligraphy": "pen-tool",
    "illumination-miniature": "palette",
    "musical-instruments": "guitar",
    "wrought-iron": "fence",
    "plaster-carving": "flower",
    "zellige-mosaic": "shapes",
    "blacksmithing": "anvil",
    "tailoring": "scissors",
    "traditional-bakery-pastry": "croissant",
    "soap-cosmetics": "soap-dispenser-droplet",
    "distillation": "flask-conical",
    "carpentry": "hammer",
    "shoemaking": "footprints",
    "traditional-food": "wheat",
    "plumbing": "droplets",
    "electricity": "zap",
    "mechanics": "car",
    "hairdressing": "sparkles",
    "masonry": "brick-wall",
    "house-painting": "paint-roller",
    "shoe-repair": "footprints",
    "refrigeration-air-conditioning": "snowflake",
    "electronics-repair": "cpu",
}


def load(apps, schema_editor):
    Trade = apps.get_model("hub", "Trade")
    for slug, icon in ICONS.items():
        Trade.objects.filter(slug=slug).update(icon=icon)


class Migration(migrations.Migration):
    dependencies = [("hub", "0011_user_phone")]

    operations = [
        migrations.AddField(
            model_name="trade",
            name="icon",
            field=models.CharField(blank=True, default="hammer", max_length=40, verbose_name="icon"),
        ),
        migrations.RunPython(load, migrations.RunPython.noop),
    ]
