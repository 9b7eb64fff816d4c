"""The full-text index behind ``articles.search``: FTS5 with triggers on SQLite, GIN on PostgreSQL.

Neither is a model field, so the migration state does not change; the operations only touch the
database of the vendor they are written for and do nothing elsewhere.

On SQLite, a later migration that alters ``articles_article`` makes Django rebuild the table, which
drops its triggers: such a migration must run ``articles.search.SQLITE_INSTALL`` again (after
``SQLITE_UNINSTALL``). ``tests/test_search.py`` fails if the triggers are missing.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations

from articles.search import POSTGRES_INDEX_NAME, SQLITE_INSTALL, SQLITE_UNINSTALL, search_vector


def _index():
    return GinIndex(search_vector(), name=POSTGRES_INDEX_NAME)


def create_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_INSTALL:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.add_index(apps.get_model("articles", "Article"), _index())


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_UNINSTALL:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("articles", "Article"), _index())


class Migration(migrations.Migration):
    dependencies = [("articles", "0002_content_version_row")]
    operations = [migrations.RunPython(create_index, drop_index)]
