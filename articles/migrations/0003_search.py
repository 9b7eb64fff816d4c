"""The full-text index behind ``articles.search``: FTS5 with triggers on SQLite, a generated
tsvector column with a GIN index on PostgreSQL.

Neither is a model field, so the migration state does not change; each branch only runs on the
database it is written for. Both index the articles that already exist.

On SQLite, a later migration that alters ``articles_article`` makes Django rebuild the table, which
drops its triggers: such a migration must run ``articles.search.SQLITE_UNINSTALL`` and then
``SQLITE_INSTALL`` again. ``tests/test_search.py`` fails if the triggers are missing.
"""

from django.db import migrations

from articles.search import POSTGRES_INSTALL, POSTGRES_UNINSTALL, SQLITE_INSTALL, SQLITE_UNINSTALL

STATEMENTS = {
    "sqlite": (SQLITE_INSTALL, SQLITE_UNINSTALL),
    "postgresql": (POSTGRES_INSTALL, POSTGRES_UNINSTALL),
}


def create_index(apps, schema_editor):
    install, _ = STATEMENTS.get(schema_editor.connection.vendor, ((), ()))
    for statement in install:
        schema_editor.execute(statement)


def drop_index(apps, schema_editor):
    _, uninstall = STATEMENTS.get(schema_editor.connection.vendor, ((), ()))
    for statement in uninstall:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("articles", "0002_content_version_row")]
    operations = [migrations.RunPython(create_index, drop_index)]
