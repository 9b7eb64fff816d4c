"""factory_boy factories shared by every test module."""

import factory
from django.utils import timezone
from django.utils.text import slugify

from articles.models import Article, Source


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Source {n}")
    slug = factory.LazyAttribute(lambda obj: slugify(obj.name, allow_unicode=True))


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    title = factory.Sequence(lambda n: f"Article number {n}")
    slug = factory.LazyAttribute(lambda obj: slugify(obj.title, allow_unicode=True))
    summary = factory.LazyAttribute(lambda obj: f"Summary of {obj.title}.")
    body = factory.LazyAttribute(lambda obj: f"First paragraph of {obj.title}.\n\nSecond paragraph.")
    source = factory.SubFactory(SourceFactory)
    cited_source = None
    status = Article.Status.PUBLISHED
    published_at = factory.LazyFunction(lambda: timezone.now() - timezone.timedelta(hours=1))
