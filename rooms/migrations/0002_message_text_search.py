"""A GIN index for the full-text search of messages, on PostgreSQL only.

The indexed expression is `rooms.search.FTS_VECTOR_SQL` (French and Arabic
vectors of the text, joined); the search query uses the same expression, which
is what lets PostgreSQL use this index. SQLite has no such index: the embedded
default searches with a plain `LIKE`, and this migration does nothing there.
"""

from django.db import migrations

INDEX_NAME = "rooms_message_text_fts"
# Spelled out rather than imported so the migration keeps meaning what it meant
# when it ran, whatever later code says.
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON rooms_message USING GIN "
    "((to_tsvector('french'::regconfig, \"text\") || to_tsvector('arabic'::regconfig, \"text\")))"
)
DROP = f"DROP INDEX IF EXISTS {INDEX_NAME}"


def create_index(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("rooms", "0001_initial")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
