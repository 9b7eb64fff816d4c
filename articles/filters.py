"""The listing filters (source, cited outlet, publication dates), kept in the query string.

Everything arrives through django-filter's form, so a bad value (an unknown slug, ``2024-13-45``, a
range that ends before it starts) becomes a form error shown to the reader, never an exception.
"""

import html

from django import forms
from django.forms.utils import flatatt
from django.db.models import Exists, OuterRef
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django_filters import ChoiceFilter, DateFromToRangeFilter, FilterSet
from django_filters.widgets import DateRangeWidget

from .caching import cached_for_content
from .models import Article, Source


class CompactSelect(forms.Select):
    """A <select> rendered by joining strings rather than through one template per <option>.

    The source lists hold hundreds of options; Django's template-per-option rendering cost ~20 ms
    a page, more than everything else on the home page together. Same HTML, every value and label
    escaped; no option groups, which these lists do not use.
    """

    def render(self, name, value, attrs=None, renderer=None):
        selected = {str(item) for item in self.format_value(value)}
        final_attrs = self.build_attrs(self.attrs, {**(attrs or {}), "name": name})
        final_attrs.pop("required", None)
        parts = [f"<select{flatatt(final_attrs)}>"]
        for key, label in self.choices:
            key = str(key)
            mark = " selected" if key in selected else ""
            # html.escape is what django.utils.html.escape calls, without its per-call wrapping.
            parts.append(f'<option value="{html.escape(key)}"{mark}>{html.escape(str(label))}</option>')
        parts.append("</select>")
        return mark_safe("".join(parts))


class LabelledDateRangeWidget(DateRangeWidget):
    """Two native date pickers, each with its own accessible name (one <label> cannot name both)."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.widgets = [
            forms.DateInput(attrs={"type": "date", "aria-label": _("From date")}),
            forms.DateInput(attrs={"type": "date", "aria-label": _("To date")}),
        ]


#: Dates outside these years are typing mistakes, and at the edges of the calendar converting them
#: between time zones overflows (0001-01-01 in New York is before year 1 in UTC).
EARLIEST_YEAR, LATEST_YEAR = 1800, 2999


class ArticleFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        published = cleaned.get("published")
        if not published:
            return cleaned
        start, stop = published.start, published.stop
        # "From year 1" and "to year 9999" mean no bound at all; say so rather than compute with them.
        start = None if start and start.year < EARLIEST_YEAR else start
        stop = None if stop and stop.year > LATEST_YEAR else stop
        if (start and start.year > LATEST_YEAR) or (stop and stop.year < EARLIEST_YEAR):
            self.add_error(
                "published",
                _("Dates must be between the years %(first)s and %(last)s.")
                % {"first": EARLIEST_YEAR, "last": LATEST_YEAR},
            )
        elif start and stop and start > stop:
            self.add_error("published", _("The “from” date is after the “to” date."))
        else:
            cleaned["published"] = slice(start, stop) if start or stop else None
        return cleaned


def _source_choices(relation: str):
    """(slug, name) of the sources with a published article through ``relation``.

    Plain tuples rather than model instances: these lists run to hundreds of entries on every page.
    """

    def query():
        articles = Article.objects.published().filter(**{relation: OuterRef("pk")})
        return list(Source.objects.filter(Exists(articles)).order_by("name").values_list("slug", "name"))

    # Every uncached page renders these lists; they change only when the content does.
    return lambda: cached_for_content(f"source-choices:{relation}", query)


class SourceSlugFilter(ChoiceFilter):
    """Filter on a source by its slug, in the index-friendly shape of ``listing.published_among``.

    ``id IN (SELECT id … WHERE <relation>_id = (SELECT id FROM source WHERE slug = …))``: no join
    of the source table, and the per-source index answers the inner query.
    """

    def filter(self, qs, value):
        if value in forms.Field.empty_values:
            return qs
        source_id = Source.objects.filter(slug=value).values("pk")[:1]
        return qs.filter(pk__in=Article.objects.filter(**{self.field_name: source_id}).values("pk"))


class ArticleFilter(FilterSet):
    """Filters for any queryset of articles: the home page uses it, and so does the search page.

    Query-string names are stable and readable, so a filtered page can be bookmarked:
    ``?source=<slug>&outlet=<slug>&published_after=YYYY-MM-DD&published_before=YYYY-MM-DD``.
    """

    source = SourceSlugFilter(
        field_name="source",
        choices=_source_choices("source"),
        label=_("Source"),
        empty_label=_("Any source"),
        widget=CompactSelect,
    )
    outlet = SourceSlugFilter(
        field_name="cited_source",
        choices=_source_choices("cited_source"),
        label=_("Cited outlet"),
        empty_label=_("Any outlet"),
        widget=CompactSelect,
    )
    published = DateFromToRangeFilter(
        field_name="published_at", label=_("Published between"), widget=LabelledDateRangeWidget
    )

    class Meta:
        model = Article
        fields = ["source", "outlet", "published"]
        form = ArticleFilterForm
