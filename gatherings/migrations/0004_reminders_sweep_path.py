"""The reminder sweep moved from `gatherings.tasks` to `gatherings.reminders` (breaking an
import cycle). Sweeps queued before the upgrade name the old path; rewrite them so the
worker still finds them."""

from django.db import migrations

OLD = "gatherings.tasks.reminders_sweep"
NEW = "gatherings.reminders.reminders_sweep"


def forwards(apps, schema_editor):
    apps.get_model("django_tasks_database", "DBTaskResult").objects.filter(task_path=OLD).update(task_path=NEW)


def backwards(apps, schema_editor):
    apps.get_model("django_tasks_database", "DBTaskResult").objects.filter(task_path=NEW).update(task_path=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("gatherings", "0003_task_paths_after_move"),
        ("django_tasks_database", "__latest__"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
