"""A GIN index for the directory's full-text search, on PostgreSQL only.

The indexed expression is `registry.selectors.FTS_VECTOR_SQL` (French and
Arabic vectors of an artisan's display name and bio, joined); the search uses
the same expression, which is what lets PostgreSQL use this index. The index
lies on the hub's profile table, whose columns it only reads. SQLite: nothing.
"""

from django.db import migrations

INDEX_NAME = "registry_artisan_fts"
# Spelled out rather than imported so the migration keeps meaning what it meant when it ran.
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON hub_artisanprofile USING GIN (("
    "to_tsvector('french'::regconfig, \"display_name\" || ' ' || \"bio\")"
    " || to_tsvector('arabic'::regconfig, \"display_name\" || ' ' || \"bio\")))"
)
DROP = f"DROP INDEX IF EXISTS {INDEX_NAME}"


def create_index(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial"), ("hub", "0004_notification_gathering_kinds")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
