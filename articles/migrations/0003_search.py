"""The full-text index behind ``articles.search``: FTS5 with triggers on SQLite, a generated
tsvector column with a GIN index on PostgreSQL.

Neither is a model field, so the migration state does not change; each branch only runs on the
database it is written for. Both index the articles that already exist.

On SQLite, a later migration that alters ``articles_article`` makes Django rebuild the table, which
drops its triggers: such a migration must run this migration's ``SQLITE_UNINSTALL`` and then
``SQLITE_INSTALL`` again. ``tests/test_search.py`` fails if the triggers are missing.
"""

from django.db import migrations

# The statements are written out here, not imported from articles.search: an applied migration must
# never change when application code does.
SQLITE_INSTALL = [
    """CREATE VIRTUAL TABLE articles_article_fts USING fts5(
        title, summary, body,
        content='articles_article', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER articles_article_fts_ai AFTER INSERT ON articles_article BEGIN
        INSERT INTO articles_article_fts(rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
    """CREATE TRIGGER articles_article_fts_ad AFTER DELETE ON articles_article BEGIN
        INSERT INTO articles_article_fts(articles_article_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
    END""",
    """CREATE TRIGGER articles_article_fts_au AFTER UPDATE OF id, title, summary, body ON articles_article BEGIN
        INSERT INTO articles_article_fts(articles_article_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
        INSERT INTO articles_article_fts(rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
    "INSERT INTO articles_article_fts(articles_article_fts) VALUES ('rebuild')",
]

SQLITE_UNINSTALL = [
    'DROP TRIGGER IF EXISTS articles_article_fts_ai',
    'DROP TRIGGER IF EXISTS articles_article_fts_ad',
    'DROP TRIGGER IF EXISTS articles_article_fts_au',
    'DROP TABLE IF EXISTS articles_article_fts',
]

POSTGRES_INSTALL = [
    """ALTER TABLE articles_article ADD COLUMN search_document tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(summary, '')), 'B')
        || setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'C')
    ) STORED""",
    'CREATE INDEX article_search_idx ON articles_article USING gin (search_document)',
]

POSTGRES_UNINSTALL = [
    'DROP INDEX IF EXISTS article_search_idx',
    'ALTER TABLE articles_article DROP COLUMN IF EXISTS search_document',
]

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
