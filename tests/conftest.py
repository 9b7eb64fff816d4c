import pytest

from tests.factories import ArticleFactory, SourceFactory


@pytest.fixture
def source(db):
    return SourceFactory(name="Sean Hannity")


@pytest.fixture
def article(db, source):
    return ArticleFactory(source=source)
