"""Reading articles for public pages: what a listing selects, and how a page of it is fetched."""

from django.core.paginator import Paginator
from django.db.models import ExpressionWrapper, IntegerField, Value
from django.db.models.functions import Length, Replace

from .models import WORDS_PER_MINUTE, Article


def reading_minutes():
    """Reading time computed by the database, so listings need not load ``body``.

    It counts the spaces and line breaks in the body (one per gap between words) and rounds up at
    ``WORDS_PER_MINUTE``. A paragraph break counts as two gaps, so it can overestimate by a few
    words an article: an estimate, like any reading time, and within a minute of
    ``Article.reading_time_minutes``. Integer division behaves the same on SQLite and PostgreSQL.
    """
    without_gaps = Replace(Replace("body", Value(" "), Value("")), Value("\n"), Value(""))
    gaps = Length("body") - Length(without_gaps)
    return ExpressionWrapper((gaps + Value(WORDS_PER_MINUTE)) / Value(WORDS_PER_MINUTE), output_field=IntegerField())


def published_among(*args, **kwargs):
    """Published articles among those matching the given filter (a source, an outlet, …).

    Written as ``published AND id IN (SELECT id … WHERE <filter>)`` rather than one flat WHERE:
    without ANALYZE statistics SQLite answers the flat form from the listing index, reading
    every published row's overflow pages to test the source (30–70 ms at 10,000 articles); this
    form reads only index entries (under 1 ms), and PostgreSQL plans both alike.
    """
    return Article.objects.published().filter(pk__in=Article.objects.filter(*args, **kwargs).values("pk"))


def for_reading(queryset):
    """Articles with their sources and ``reading_minutes``, as the article page shows them."""
    return queryset.with_sources().annotate(reading_minutes=reading_minutes())


def for_listing(queryset):
    """Like ``for_reading`` but without the large text columns a card never shows."""
    return for_reading(queryset).defer("body", "imported_fields")


class DeepPagePaginator(Paginator):
    """Finds a page's ids first, then loads only those rows.

    With a plain OFFSET the database joins and reads every skipped row, so page 200 costs 200
    times page 1. Selecting ``id`` alone is answered from the listing index
    (``article_listing_idx``: status, published_at, id) without touching the table, and only
    the page's 20 rows are then joined to their sources: one query either way, and the deep page
    costs about what the first one does.
    """

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        page_ids = self.object_list.values("pk")[bottom:top]
        return self._get_page(self.object_list.filter(pk__in=page_ids), number, self)
