"""Everything the directory's search matches an artisan on, on his own row (PostgreSQL).

Before this, a word matched an artisan through subqueries over other tables (his trades,
his census record's commune); an OR of subqueries can only be read as hashed sets built
in full (15,000 rows for "cuivre") before the first artisan is returned. With every key on
the profile's row, PostgreSQL chooses per query: read the newest artisans along the
primary key and stop at the 500th match (common words), or OR the indexes together
(rare words).

- `hub_artisanprofile.search_trades`: his trade ids (GIN-indexed), kept by a trigger on
  the trades table of the profile;
- `hub_artisanprofile.search_commune`: his census record's folded commune (trigram
  GIN), kept by a trigger on `registry_census` and filled when the profile is created;
- an index on (wilaya, id): the newest artisans of one wilaya without reading the others.

Triggers, like the generated columns of `0004_search_keys`, mean no code path (services,
admin, bulk inserts) can forget them. The trigram indexes of 0004 and these are built
without GIN's pending list (`fastupdate = off`): with it, rows written in bulk stayed in an
unsorted list that every search read in full (348 pages for a word that matched nothing)
until a vacuum merged it.
"""

from django.db import migrations

TRGM_INDEXES = [
    "hub_artisanprofile_search_fold_trgm",
    "hub_artisanprofile_search_skeleton_trgm",
    "registry_product_search_fold_trgm",
    "registry_census_commune_fold_trgm",
]

FORWARDS = """
ALTER TABLE hub_artisanprofile ADD COLUMN IF NOT EXISTS search_trades bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE hub_artisanprofile ADD COLUMN IF NOT EXISTS search_commune text NOT NULL DEFAULT '';

CREATE OR REPLACE FUNCTION hirfa_profile_trades(profile_id bigint) RETURNS bigint[] LANGUAGE sql STABLE AS $$
  SELECT COALESCE(array_agg(trade_id ORDER BY trade_id), '{}') FROM hub_artisanprofile_trades
  WHERE artisanprofile_id = profile_id
$$;

CREATE OR REPLACE FUNCTION hirfa_profile_trades_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    UPDATE hub_artisanprofile SET search_trades = hirfa_profile_trades(id) WHERE id = NEW.artisanprofile_id;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE hub_artisanprofile SET search_trades = hirfa_profile_trades(id) WHERE id = OLD.artisanprofile_id;
  END IF;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS hirfa_profile_trades_sync ON hub_artisanprofile_trades;
CREATE TRIGGER hirfa_profile_trades_sync AFTER INSERT OR UPDATE OR DELETE ON hub_artisanprofile_trades
  FOR EACH ROW EXECUTE FUNCTION hirfa_profile_trades_sync();

CREATE OR REPLACE FUNCTION hirfa_census_commune_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE hub_artisanprofile SET search_commune = NEW.commune_fold
  WHERE user_id = NEW.user_id AND search_commune IS DISTINCT FROM NEW.commune_fold;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS hirfa_census_commune_sync ON registry_census;
CREATE TRIGGER hirfa_census_commune_sync AFTER INSERT OR UPDATE OF commune ON registry_census
  FOR EACH ROW EXECUTE FUNCTION hirfa_census_commune_sync();

CREATE OR REPLACE FUNCTION hirfa_profile_commune_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.search_commune := COALESCE((SELECT commune_fold FROM registry_census WHERE user_id = NEW.user_id), '');
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS hirfa_profile_commune_fill ON hub_artisanprofile;
CREATE TRIGGER hirfa_profile_commune_fill BEFORE INSERT ON hub_artisanprofile
  FOR EACH ROW EXECUTE FUNCTION hirfa_profile_commune_fill();

UPDATE hub_artisanprofile p SET search_trades = hirfa_profile_trades(p.id),
  search_commune = COALESCE((SELECT commune_fold FROM registry_census c WHERE c.user_id = p.user_id), '');

CREATE INDEX IF NOT EXISTS hub_artisanprofile_search_trades_gin ON hub_artisanprofile
  USING GIN (search_trades) WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS hub_artisanprofile_search_wilaya_newest ON hub_artisanprofile (wilaya_id, id);
CREATE INDEX IF NOT EXISTS hub_artisanprofile_search_commune_trgm ON hub_artisanprofile
  USING GIN (search_commune gin_trgm_ops) WITH (fastupdate = off);
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS hirfa_profile_trades_sync ON hub_artisanprofile_trades;
DROP TRIGGER IF EXISTS hirfa_census_commune_sync ON registry_census;
DROP TRIGGER IF EXISTS hirfa_profile_commune_fill ON hub_artisanprofile;
DROP FUNCTION IF EXISTS hirfa_profile_trades_sync();
DROP FUNCTION IF EXISTS hirfa_census_commune_sync();
DROP FUNCTION IF EXISTS hirfa_profile_commune_fill();
DROP INDEX IF EXISTS hub_artisanprofile_search_wilaya_newest;
ALTER TABLE hub_artisanprofile DROP COLUMN IF EXISTS search_trades;
ALTER TABLE hub_artisanprofile DROP COLUMN IF EXISTS search_commune;
DROP FUNCTION IF EXISTS hirfa_profile_trades(bigint);
"""


def forwards(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FORWARDS)
    for index in TRGM_INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} SET (fastupdate = off)")
        # What already sits in the pending list is merged now, not at the next vacuum.
        schema_editor.execute(
            f"SELECT gin_clean_pending_list(c.oid) FROM pg_class c WHERE c.relname = '{index}'"
        )


def backwards(apps, schema_editor):  # noqa: ARG001
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(BACKWARDS)
    for index in TRGM_INDEXES:
        schema_editor.execute(f"ALTER INDEX IF EXISTS {index} SET (fastupdate = on)")


class Migration(migrations.Migration):
    dependencies = [("registry", "0009_favourites_follows")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
