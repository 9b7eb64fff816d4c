"""The newsroom admin: articles and sources, with history, safe concurrent edits and bulk actions.

Pages run a fixed number of queries however many articles and sources there are: sources are picked
with autocomplete widgets, filtered with lists of the most used ones, and counted with correlated
subqueries evaluated only for the rows on the page.
"""

import difflib
import re

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from . import publishing
from . import admin_webhooks  # noqa: F401  (registers the webhook pages)
from .admin_imports import ImportConflictFilter, conflict_marker, warn_about_conflicts, with_conflict_marker
from .forms import ArticleAdminForm, RevisionCompareForm
from .models import Article, SlugRedirect, Source

#: Query-string parameters of the two source filters; the Sources list links to them.
#: The largest primary key a BigAutoField holds.
MAX_ID = 2**63 - 1

SOURCE_PARAM = "source"
CITED_PARAM = "cited"


_WORDS = re.compile(r"(\s+)")


def text_diff(old: str, new: str) -> list[tuple[str, str]]:
    """A word-level diff as ``(operation, text)`` pieces: ``equal``, ``delete`` or ``insert``.

    The template wraps deleted and inserted pieces in ``<del>``/``<ins>`` with autoescaping on, so
    imported text is never marked safe.
    """
    old_words, new_words = _WORDS.split(old), _WORDS.split(new)
    pieces = []
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    for operation, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if operation == "equal":
            pieces.append(("equal", "".join(old_words[old_start:old_end])))
            continue
        if old_end > old_start:
            pieces.append(("delete", "".join(old_words[old_start:old_end])))
        if new_end > new_start:
            pieces.append(("insert", "".join(new_words[new_start:new_end])))
    return pieces


class SafeSearchMixin:
    """Admin search that drops NUL characters: PostgreSQL refuses them in text, which was a 500."""

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))


class RevisionsAdmin(SafeSearchMixin, SimpleHistoryAdmin):
    """simple-history's history and revert, plus a comparison of any two revisions.

    The history list (one row per revision, with the fields each one changed) gets two radio
    columns to pick revisions; the comparison shows every changed field, text as a word diff.
    """

    object_history_template = "admin/articles/history.html"
    object_history_list_template = "admin/articles/history_list.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        compare = path(
            "<path:object_id>/history/compare/",
            self.admin_site.admin_view(self.compare_view),
            name="%s_%s_compare" % info,
        )
        # Before simple-history's "<id>/history/<revision>/", which would take "compare" for a revision.
        return [compare, *super().get_urls()]

    def compare_view(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not self.has_view_history_or_change_history_permission(request, obj):
            raise PermissionDenied
        revisions = obj.history.select_related("history_user")
        if not revisions.exists():
            raise Http404
        form = RevisionCompareForm(request.GET, revisions=revisions)
        if not form.is_valid():
            raise Http404
        older, newer = form.cleaned_data["older"], form.cleaned_data["newer"]
        changes = []
        for change in newer.diff_against(older, foreign_keys_are_objs=True).changes:
            row = {
                "label": capfirst(self.opts.get_field(change.field).verbose_name),
                "old": change.old,
                "new": change.new,
            }
            if isinstance(change.old, str) and isinstance(change.new, str):
                row["pieces"] = text_diff(change.old, change.new)
            changes.append(row)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Compare revisions: %s") % obj,
            "opts": self.opts,
            "object": obj,
            "older": older,
            "newer": newer,
            "changes": changes,
            "history_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_history", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/articles/history_compare.html", context)


class TopSourcesFilter(admin.SimpleListFilter):
    """Filter articles by a source without rendering every source in the sidebar.

    It lists the sources with the most articles, plus the selected one. Any other source is one click
    away from its row in the Sources list, which links here with the parameter set.
    """

    limit = 15
    #: The Article foreign key to filter on and the Source reverse accessor counting along it.
    field_name = ""
    related_name = ""

    def lookups(self, request, model_admin):
        top = list(
            Source.objects.annotate(article_total=Count(self.related_name))
            .filter(article_total__gt=0)
            .order_by("-article_total", "name")
            .values_list("pk", "name")[: self.limit]
        )
        selected = self._selected_pk()
        if selected is not None and selected not in {pk for pk, _name in top}:
            top += list(Source.objects.filter(pk=selected).values_list("pk", "name"))
        return [(str(pk), name) for pk, name in top]

    def queryset(self, request, queryset):
        selected = self._selected_pk()
        if selected is None:
            return queryset
        return queryset.filter(**{f"{self.field_name}_id": selected})

    def _selected_pk(self) -> int | None:
        value = self.value()
        if value is None:
            return None
        try:
            pk = int(value)
        except ValueError as err:
            raise IncorrectLookupParameters(f"{self.parameter_name}={value!r} is not a source id") from err
        if not 0 < pk <= MAX_ID:  # the database cannot even compare a larger number
            raise IncorrectLookupParameters(f"{self.parameter_name}={value!r} is not a source id")
        return pk


class SourceFilter(TopSourcesFilter):
    title = _("source")
    parameter_name = SOURCE_PARAM
    field_name = "source"
    related_name = "articles"


class CitedSourceFilter(TopSourcesFilter):
    title = _("cited outlet")
    parameter_name = CITED_PARAM
    field_name = "cited_source"
    related_name = "cited_articles"


class ArticleChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The list shows titles only: reading every row's body and import baseline would be waste.
        queryset = super().get_queryset(request, exclude_parameters).defer("body", "summary", "imported_fields")
        return with_conflict_marker(queryset)


@admin.register(Article)
class ArticleAdmin(RevisionsAdmin):
    form = ArticleAdminForm
    list_display = [
        "title", "attention", "source", "status", "published_at", "updated_at", "from_seed", "edited_since_import",
    ]
    list_filter = ["status", ImportConflictFilter, SourceFilter, CitedSourceFilter, "edited_since_import"]
    list_select_related = ["source"]
    date_hierarchy = "published_at"
    search_fields = ["title", "summary", "body", "source__name"]
    ordering = ["-published_at", "-id"]
    # Skip the unfiltered COUNT(*) over the whole table on every filtered page.
    show_full_result_count = False
    list_per_page = 50
    autocomplete_fields = ["source", "cited_source"]
    readonly_fields = [
        "seed_identity",
        "seed_sha256",
        "imported_at",
        "edited_since_import",
        "version",
        "created_at",
        "updated_at",
    ]
    actions = ["publish", "unpublish", "archive"]
    history_list_display = ["status", "version"]

    def get_changelist(self, request, **kwargs):
        return ArticleChangeList

    def get_fieldsets(self, request, obj=None):
        article = ["title", "slug", "summary", "body"]
        if obj is None:
            return [
                (None, {"fields": article}),
                (_("Publication"), {"fields": ["status", "published_at", "source", "cited_source"]}),
            ]
        if publishing.has_public_address(obj):
            article.insert(2, "change_slug")
        return [
            (None, {"fields": [*article, "expected_version"]}),
            (_("Publication"), {"fields": ["status", "published_at", "source", "cited_source"]}),
            (
                _("Import provenance"),
                {"fields": ["seed_identity", "seed_sha256", "imported_at", "edited_since_import"]},
            ),
            (_("Record"), {"fields": ["version", "created_at", "updated_at"]}),
        ]

    def get_prepopulated_fields(self, request, obj=None):
        # Only for new articles: an existing slug is an address that must not follow title edits.
        return {"slug": ("title",)} if obj is None else {}

    class Media:
        css = {"all": ["articles/admin/import_conflicts.css"]}

    @admin.display(description=_("needs attention"))
    def attention(self, obj):
        return conflict_marker(obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            warn_about_conflicts(request, unquote(object_id))
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(boolean=True, description=_("from seed"), ordering="seed_identity")
    def from_seed(self, obj):
        return obj.seed_identity is not None

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        obj._history_user = request.user
        publishing.save_edit(obj, locked=form.locked_article, fields=form.model_field_names)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # A revert is an edit: lock, check the version and save in one transaction, like the change view.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().history_form_view(request, object_id, version_id, extra_context)

    @admin.action(description=_("Publish selected articles"), permissions=["change"])
    def publish(self, request, queryset):
        self._report(request, publishing.publish(queryset, user=request.user))

    @admin.action(description=_("Unpublish selected articles (back to draft)"), permissions=["change"])
    def unpublish(self, request, queryset):
        self._report(request, publishing.unpublish(queryset, user=request.user))

    @admin.action(description=_("Archive selected articles"), permissions=["change"])
    def archive(self, request, queryset):
        self._report(request, publishing.archive(queryset, user=request.user))

    def _report(self, request, result: publishing.StatusChange) -> None:
        status = Article.Status(result.status).label.lower()
        changed = len(result.changed)
        message = ngettext(
            "%(count)d article set to %(status)s.", "%(count)d articles set to %(status)s.", changed
        ) % {"count": changed, "status": status}
        if result.unchanged:
            message += " " + ngettext(
                "%(count)d was already %(status)s and was left alone.",
                "%(count)d were already %(status)s and were left alone.",
                result.unchanged,
            ) % {"count": result.unchanged, "status": status}
        self.message_user(request, message, messages.SUCCESS if changed else messages.WARNING)


def _count_articles(field_name: str) -> Coalesce:
    """How many articles point at the outer source through ``field_name``, as a correlated subquery.

    A subquery in the SELECT list is evaluated only for the rows returned, so a page of 100 sources
    costs 100 index lookups however many sources and articles there are — unlike a JOIN + GROUP BY.
    """
    counts = (
        Article.objects.filter(**{field_name: OuterRef("pk")})
        .order_by()
        .values(field_name)
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


@admin.register(Source)
class SourceAdmin(RevisionsAdmin):
    list_display = ["name", "article_count", "cited_count", "homepage_url", "updated_at"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ["created_at", "updated_at"]
    # A homepage typed without a scheme is an https one (and Django 6 makes this the default).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    show_full_result_count = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(article_count=_count_articles("source"), cited_count=_count_articles("cited_source"))
        )

    @admin.display(description=_("articles"), ordering="article_count")
    def article_count(self, obj):
        return self._articles_link(SOURCE_PARAM, obj.pk, obj.article_count)

    @admin.display(description=_("cited by"), ordering="cited_count")
    def cited_count(self, obj):
        return self._articles_link(CITED_PARAM, obj.pk, obj.cited_count)

    @staticmethod
    def _articles_link(param: str, pk: int, count: int):
        url = reverse("admin:articles_article_changelist")
        return format_html('<a href="{}?{}={}">{}</a>', url, param, pk, count)

    def get_deleted_objects(self, objs, request):
        """Refuse to delete a source that articles still point at, saying so instead of listing them.

        The foreign keys are ``PROTECT``, so Django would refuse anyway, but only after collecting
        and printing every protected article. Here the page names the sources, their counts and a
        link to their articles; both the delete page and the bulk "delete selected" action use this,
        and neither deletes anything while the list is not empty.
        """
        in_use = [source for source in self._with_counts(objs) if source.article_count or source.cited_count]
        if not in_use:
            return super().get_deleted_objects(objs, request)
        protected = [
            format_html(
                "{}: {} article(s) published by it and {} citing it. Reassign or delete them first: {} · {}",
                source.name,
                source.article_count,
                source.cited_count,
                self._articles_link(SOURCE_PARAM, source.pk, _("its articles")),
                self._articles_link(CITED_PARAM, source.pk, _("articles citing it")),
            )
            for source in in_use
        ]
        return [], {}, set(), protected

    def _with_counts(self, objs):
        pks = [obj.pk for obj in objs]
        return (
            Source.objects.filter(pk__in=pks)
            .annotate(article_count=_count_articles("source"), cited_count=_count_articles("cited_source"))
            .order_by("name")
        )


@admin.register(SlugRedirect)
class SlugRedirectAdmin(SafeSearchMixin, admin.ModelAdmin):
    """Old article addresses. Created when a published article's slug is changed, never by hand."""

    list_display = ["old_slug", "article", "created_at"]
    list_select_related = ["article"]
    search_fields = ["old_slug", "article__title", "article__slug"]
    ordering = ["-created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
