"""The importer in the admin: the runs, each run's files, and the inbox of import conflicts.

Runs and their outcome rows are a read-only log written by ``articles.importing``. Conflicts are
resolved per article on one page that shows, for each field, the editor's value beside the seed's
new value with a word diff, and a *Keep mine* / *Take the seed's* choice; the choice is applied by
:func:`articles.importing.resolve_conflicts`, the same service the command uses.
"""

import uuid

from django import forms
from django.conf import settings
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

from . import importing, jobs, uploads
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


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files at once (Django's documented recipe)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(file, initial) for file in files]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label=_("Seed files or zip archives"),
        widget=MultipleFileInput(attrs={"accept": ".txt,.zip,text/plain,application/zip"}),
        help_text=_("Plain-text seed files (.txt) or .zip archives of them; the import runs in the background."),
    )


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyLogAdmin):
    list_display = [
        "__str__", "state", "started_by", "progress_short", "created", "updated", "conflicts", "duplicates", "skipped",
        "rejected", "exit_status", "duration",
    ]
    list_filter = ["state"]
    fields = [
        "state", "progress", "command", "started_by", "user", "paths", "started_at", "finished_at", "exit_status",
        "error", "files",
    ]
    readonly_fields = fields
    list_select_related = ["user"]
    show_full_result_count = False
    change_form_template = "admin/articles/importrun/change_form.html"

    def has_add_permission(self, request):
        return request.user.has_perm("articles.add_importrun")

    def add_view(self, request, form_url="", extra_context=None):
        """Upload seed files or zips; the import runs as a task and its page shows the progress."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            folder = settings.NEWSROOM_UPLOAD_DIR / uuid.uuid4().hex
            try:
                count = uploads.unpack(
                    [uploads.Upload(name=f.name, size=f.size, stream=f) for f in form.cleaned_data["files"]],
                    folder,
                    max_bytes=settings.NEWSROOM_UPLOAD_MAX_BYTES,
                    max_files=settings.NEWSROOM_UPLOAD_MAX_FILES,
                )
            except uploads.UploadError as err:
                form.add_error("files", str(err))
            else:
                names = ", ".join(f.name for f in form.cleaned_data["files"])
                run = jobs.queue_import(folder, user=request.user, command=f"upload: {names}"[:2000], owns_folder=True)
                self.message_user(request, _("%(count)d seed files uploaded; the import is queued.") % {"count": count})
                return HttpResponseRedirect(reverse("admin:articles_importrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import seed files"),
            "opts": self.opts,
            "form": form,
            "limit_mb": settings.NEWSROOM_UPLOAD_MAX_BYTES // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/articles/importrun/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "live": run is not None and run.state in (
            ImportRun.State.QUEUED, ImportRun.State.RUNNING)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("progress"))
    def progress(self, run):
        """Files done of those found, the rate, the time left, and the outcomes so far."""
        if run.state == ImportRun.State.QUEUED:
            return _("Waiting for a worker")
        parts = [self.progress_short(run)]
        if run.state == ImportRun.State.RUNNING and run.done_files and run.heartbeat_at:
            elapsed = max((run.heartbeat_at - run.started_at).total_seconds(), 0.001)
            rate = run.done_files / elapsed
            parts.append(_("%(rate)s files/s") % {"rate": f"{rate:,.0f}"})
            if run.total_files and rate:
                left = max(run.total_files - run.done_files, 0) / rate
                parts.append(_("about %(seconds)s s left") % {"seconds": f"{left:,.0f}"})
        return " · ".join(map(str, parts))

    @admin.display(description=_("files done"))
    def progress_short(self, run):
        if run.total_files:
            percent = 100 * run.done_files // max(run.total_files, 1)
            return f"{run.done_files:,} / {run.total_files:,} ({percent} %)"
        return f"{run.done_files:,}"

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
