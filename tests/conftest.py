import pytest
from django.core.cache import cache

from tests.factories import ArticleFactory, SourceFactory


@pytest.fixture(autouse=True)
def empty_cache():
    """Cached pages outlive a test's rolled-back transaction: start every test with an empty cache."""
    cache.clear()


@pytest.fixture
def source(db):
    return SourceFactory(name="Sean Hannity")


@pytest.fixture
def article(db, source):
    return ArticleFactory(source=source)
