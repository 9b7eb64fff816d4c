"""The importer in the admin: the runs, each run's files, and the inbox of import conflicts.

Runs and their outcome rows are a read-only log written by ``articles.importing``. Conflicts are
resolved per article on one page that shows, for each field, the editor's value beside the seed's
new value with a word diff, and a *Keep mine* / *Take the seed's* choice; the choice is applied by
:func:`articles.importing.resolve_conflicts`, the same service the command uses.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import importing
from .models import SEED_FIELDS, Article, ImportConflict, ImportOutcome, ImportRun


class ReadOnlyLogAdmin(admin.ModelAdmin):
    """A log written by the importer: staff may look, nobody edits or adds by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def outcomes_url(run_id: int, outcome: str | None = None) -> str:
    query = {"run__id__exact": run_id}
    if outcome:
        query["outcome__exact"] = outcome
    return f"{reverse('admin:articles_importoutcome_changelist')}?{urlencode(query)}"


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyLogAdmin):
    list_display = [
        "__str__", "state", "started_by", "created", "updated", "conflicts", "duplicates", "skipped", "rejected",
        "exit_status", "duration",
    ]
    list_filter = ["state"]
    fields = ["state", "command", "started_by", "user", "paths", "started_at", "finished_at", "exit_status", "error", "files"]
    readonly_fields = fields
    list_select_related = ["user"]
    show_full_result_count = False

    @admin.display(description=_("duration"))
    def duration(self, run):
        if run.finished_at is None:
            return "—"
        return f"{(run.finished_at - run.started_at).total_seconds():,.1f} s"

    @admin.display(description=_("files"))
    def files(self, run):
        """The run's counts, each a link to those files (unchanged ones have no rows)."""
        counts = [
            (outcome, getattr(run, field)) for outcome, field in importing.RUN_COUNT_FIELDS.items()
        ]
        return format_html_join(
            " · ",
            "{}",
            (
                (
                    format_html('<a href="{}">{} {}</a>', outcomes_url(run.pk, outcome), count, outcome.label.lower())
                    if count and outcome is not importing.Outcome.UNCHANGED
                    else format_html("{} {}", count, outcome.label.lower()),
                )
                for outcome, count in counts
            ),
        )


@admin.register(ImportOutcome)
class ImportOutcomeAdmin(ReadOnlyLogAdmin):
    list_display = ["path", "outcome", "detail", "article_link", "run"]
    list_filter = ["outcome"]
    search_fields = ["path"]
    show_full_result_count = False
    list_per_page = 100

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("run", "article")
            .defer("article__body", "article__summary", "article__imported_fields")
        )

    @admin.display(description=_("article"))
    def article_link(self, outcome):
        if outcome.article is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:articles_article_change", args=[outcome.article_id]), outcome.article
        )


class ConflictChoiceForm(forms.Form):
    """One radio group per conflicting field; a field left unanswered stays in the inbox."""

    def __init__(self, *args, conflicts, **kwargs):
        super().__init__(*args, **kwargs)
        for conflict in conflicts:
            self.fields[f"choice_{conflict.field}"] = forms.ChoiceField(
                label=_("Resolve %(field)s") % {"field": field_label(conflict.field)},
                choices=[(importing.Choice.MINE, _("Keep mine")), (importing.Choice.SEED, _("Take the seed's"))],
                widget=forms.RadioSelect,
                required=False,
            )
            self.fields[f"token_{conflict.field}"] = forms.CharField(
                widget=forms.HiddenInput, initial=importing.conflict_token(conflict)
            )

    def choices(self) -> dict[str, importing.Choice]:
        return {
            name.removeprefix("choice_"): importing.Choice(value)
            for name, value in self.cleaned_data.items()
            if name.startswith("choice_") and value
        }

    def tokens(self) -> dict[str, str]:
        return {
            name.removeprefix("token_"): value for name, value in self.cleaned_data.items() if name.startswith("token_")
        }


def field_label(name: str) -> str:
    return str(capfirst(Article._meta.get_field(name).verbose_name))


@admin.register(ImportConflict)
class ImportConflictAdmin(ReadOnlyLogAdmin):
    """The inbox: every pending conflict; each links to its article's resolve page."""

    list_display = ["article_title", "field_name", "seed_path", "detected_at", "run"]
    list_filter = ["field"]
    search_fields = ["article__title"]
    ordering = ["-detected_at", "-id"]
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None):
        return False  # a conflict goes away by a choice, which is recorded, never by a delete

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("article", "run")
            .defer("article__body", "article__summary", "article__imported_fields")
        )

    @admin.display(description=_("article"), ordering="article__title")
    def article_title(self, conflict):
        return format_html('<a href="{}">{}</a>', resolve_url(conflict.article_id), conflict.article)

    @admin.display(description=_("field"), ordering="field")
    def field_name(self, conflict):
        return field_label(conflict.field)

    def get_urls(self):
        resolve = path(
            "article/<int:article_id>/resolve/",
            self.admin_site.admin_view(self.resolve_view),
            name="articles_importconflict_resolve",
        )
        return [resolve, *super().get_urls()]

    def resolve_view(self, request, article_id):
        """Side by side per field, the editor's value and the seed's, and a choice for each."""
        if not (self.has_view_permission(request) and request.user.has_perm("articles.change_article")):
            raise PermissionDenied
        article = get_object_or_404(Article.objects.select_related("source", "cited_source"), pk=article_id)
        conflicts = sorted(
            ImportConflict.objects.filter(article=article).select_related("run"),
            key=lambda conflict: SEED_FIELDS.index(conflict.field),
        )
        form = ConflictChoiceForm(request.POST or None, conflicts=conflicts)
        if request.method == "POST" and form.is_valid():
            return self._resolve(request, article, form)
        if not conflicts and request.method != "POST":
            raise Http404("This article has no import conflict.")
        from .admin import text_diff  # articles.admin imports this module for the article list's marker

        current = article.seed_field_values()
        rows = []
        for conflict in conflicts:
            mine = current[conflict.field]
            theirs = conflict.incoming_value
            rows.append(
                {
                    "conflict": conflict,
                    "label": field_label(conflict.field),
                    "mine": mine,
                    "theirs": theirs,
                    "pieces": text_diff(mine or "", theirs or ""),
                    "choice": form[f"choice_{conflict.field}"],
                    "token": form[f"token_{conflict.field}"],
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import conflicts: %s") % article,
            "opts": self.opts,
            "article": article,
            "rows": rows,
            "form": form,
            "article_url": reverse("admin:articles_article_change", args=[article.pk]),
        }
        return TemplateResponse(request, "admin/articles/import_conflicts.html", context)

    def _resolve(self, request, article, form):
        choices = form.choices()
        if not choices:
            messages.warning(request, _("Choose “Keep mine” or “Take the seed’s” for at least one field."))
            return HttpResponseRedirect(request.path)
        try:
            resolution = importing.resolve_conflicts(article.pk, choices, tokens=form.tokens(), user=request.user)
        except importing.StaleConflictError as err:
            messages.error(
                request,
                _("A newer seed changed %(fields)s after you opened this page. Look at the new values and choose again.")
                % {"fields": ", ".join(field_label(name) for name in err.fields)},
            )
            return HttpResponseRedirect(request.path)
        done = [_("took the seed’s %s") % field_label(name).lower() for name in resolution.taken]
        done += [_("kept your %s") % field_label(name).lower() for name in resolution.kept]
        if done:
            messages.success(request, format_html("“{}”: {}.", article, ", ".join(map(str, done))))
        if ImportConflict.objects.filter(article=article).exists():
            return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(reverse("admin:articles_article_change", args=[article.pk]))


def resolve_url(article_id: int) -> str:
    return reverse("admin:articles_importconflict_resolve", args=[article_id])


# --- What the article list and form show of it -------------------------------------------------------


def with_conflict_marker(queryset):
    """Annotate ``has_import_conflict``: one EXISTS per row on the page, evaluated only for those rows."""
    return queryset.annotate(has_import_conflict=Exists(ImportConflict.objects.filter(article=OuterRef("pk"))))


class ImportConflictFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("import_conflict", _("Import conflict"))]

    def queryset(self, request, queryset):
        if self.value() == "import_conflict":
            return queryset.filter(Exists(ImportConflict.objects.filter(article=OuterRef("pk"))))
        return queryset


def conflict_marker(article):
    """A link to the resolve page for the list's marker column; empty when there is nothing to do."""
    if not getattr(article, "has_import_conflict", False):
        return ""
    return format_html(
        '<a class="import-conflict-marker" href="{}">{}</a>', resolve_url(article.pk), _("Import conflict")
    )


def warn_about_conflicts(request, article_id) -> None:
    """On the article's form: say that a newer seed waits, and where to choose."""
    fields = list(ImportConflict.objects.filter(article_id=article_id).values_list("field", flat=True))
    if fields:
        messages.warning(
            request,
            format_html(
                "{} <a href=\"{}\">{}</a>",
                _("A newer seed changes fields you edited: %(fields)s.")
                % {"fields": ", ".join(field_label(name) for name in sorted(fields, key=SEED_FIELDS.index))},
                resolve_url(article_id),
                _("Compare and choose"),
            ),
        )
