"""What the directory's search matches on PostgreSQL: folded and phonetic keys, trigram-indexed.

The `pg_trgm` extension (typo tolerance, `LIKE '%…%'` through an index), the
functions `hirfa_fold` and `hirfa_skeleton` (`registry.search_text`), and
generated columns that PostgreSQL computes on every write, so no code path
can forget to keep them in step:

- `hub_artisanprofile.search_fold`: the folded display name and bio;
- `hub_artisanprofile.search_skeleton`: " " + the phonetic keys of the display name;
- `registry_product.search_fold`: the folded title, materials, description and label codes;
- `registry_census.commune_fold`: the folded commune.

The columns are unknown to the Django models (the selectors read them through
SQL); a later migration that changes the type of a column they are computed
from drops them first. SQLite: nothing here; the selectors call the Python
functions of `registry.search_text`, registered on each connection.
"""

from django.db import migrations

from registry.search_text import SQL_FUNCTIONS

COLUMNS = [
    ("hub_artisanprofile", "search_fold", "hirfa_fold(display_name || ' ' || bio)"),
    ("hub_artisanprofile", "search_skeleton", "' ' || hirfa_skeleton(display_name)"),
    ("registry_product", "search_fold",
     "hirfa_fold(title || ' ' || materials || ' ' || description || ' ' || replace(labels::text, '_', ' '))"),
    ("registry_census", "commune_fold", "hirfa_fold(commune)"),
]


def forwards(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(SQL_FUNCTIONS)
    for table, column, expression in COLUMNS:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} text GENERATED ALWAYS AS ({expression}) STORED"
        )
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_{column}_trgm ON {table} USING GIN ({column} gin_trgm_ops)"
        )


def backwards(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, _expression in COLUMNS:
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")
    schema_editor.execute("DROP FUNCTION IF EXISTS hirfa_skeleton(text); DROP FUNCTION IF EXISTS hirfa_fold(text)")


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_card_photo_private_storage"), ("hub", "0007_notification_kinds_registered")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
