"""The gatherings app moved from `hub/gatherings/` to `gatherings/` (its label,
tables and migrations unchanged). Jobs queued before the upgrade name their
function by its old dotted path; rewrite them so the worker still finds them."""

from django.db import migrations
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr

OLD = "hub.gatherings."
NEW = "gatherings."


def forwards(apps, schema_editor):
    result = apps.get_model("django_tasks_database", "DBTaskResult")
    result.objects.filter(task_path__startswith=OLD).update(
        task_path=Concat(Value(NEW), Substr(F("task_path"), len(OLD) + 1))
    )


def backwards(apps, schema_editor):
    result = apps.get_model("django_tasks_database", "DBTaskResult")
    result.objects.filter(task_path__startswith=NEW).update(
        task_path=Concat(Value(OLD), Substr(F("task_path"), len(NEW) + 1))
    )


class Migration(migrations.Migration):
    dependencies = [
        ("gatherings", "0002_occurrence_meeting"),
        ("django_tasks_database", "__latest__"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
