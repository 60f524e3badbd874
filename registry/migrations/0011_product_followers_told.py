"""A product remembers when its artisan's followers were told of it (once per piece).
Pieces published before this are taken as told: a later edit must not announce them."""

from django.db import migrations, models
from django.db.models import F


def already_told(apps, schema_editor):
    Product = apps.get_model("registry", "Product")
    Product.objects.exclude(status="draft").update(followers_told_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("registry", "0010_search_document")]

    operations = [
        migrations.AddField(
            model_name="product",
            name="followers_told_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(already_told, migrations.RunPython.noop),
    ]
