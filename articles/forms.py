"""Admin forms: the article edit form that refuses stale saves and guards published addresses."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils import formats, timezone
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from simple_history.manager import SIMPLE_HISTORY_REVERSE_ATTR_NAME

from . import publishing
from .models import Article, SlugRedirect
from .seeds import default_summary, first_paragraph, normalise_line_endings

#: How much of another editor's value a conflict message quotes under each field.
CONFLICT_QUOTE_CHARS = 300


class ArticleAdminForm(forms.ModelForm):
    """The article change form.

    It carries the version the article had when the form was opened (``expected_version``); on save,
    :func:`articles.publishing.lock_for_edit` refuses it if someone saved in between. The form then
    stays on the page with the editor's text, an error naming who changed what and when, and the
    other editor's values quoted under the fields they changed. The hidden version is moved on to the
    current one, so saving again — after reading their change — deliberately replaces it.
    """

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    change_slug = forms.BooleanField(
        label=_("Change the address"),
        required=False,
        help_text=_(
            "This article has been published, so its slug is its public address. Tick this to change "
            "it; the old address will then redirect (301) to the new one."
        ),
    )

    class Meta:
        model = Article
        fields = ["title", "slug", "summary", "body", "status", "published_at", "source", "cited_source"]

    class Media:
        js = ["articles/admin/slug_lock.js"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: The article row as locked for this save; set by ``clean()`` on a valid change.
        self.locked_article = None
        instance = self.instance
        if instance.pk is None:
            return
        # A revert form's instance is rebuilt from an old revision: its version is that revision's,
        # but the edit is made over the article as it is now.
        if getattr(instance, SIMPLE_HISTORY_REVERSE_ATTR_NAME, None) is not None:
            current_version = Article.objects.filter(pk=instance.pk).values_list("version", flat=True).first()
        else:
            current_version = instance.version
        self.initial["expected_version"] = current_version
        if "slug" in self.fields and publishing.has_public_address(instance):
            self.fields["slug"].widget.attrs.update({"readonly": True, "data-slug-lock": "change_slug"})

    # Browsers send a textarea's line breaks as CRLF. Stored text uses LF, like imported text:
    # ``Article.paragraphs`` splits on blank lines, and the importer compares against these values.
    def clean_summary(self):
        return normalise_line_endings(self.cleaned_data["summary"])

    def clean_body(self):
        return normalise_line_endings(self.cleaned_data["body"])

    def clean_published_at(self):
        published_at = self.cleaned_data["published_at"]
        # The admin widget shows whole seconds; an untouched time must not lose its microseconds,
        # or every first save would record a phantom change in the history.
        original = self.instance.published_at
        if published_at and original and published_at == original.replace(microsecond=0):
            return original
        return published_at

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if SlugRedirect.objects.filter(old_slug=slug).exclude(article_id=self.instance.pk).exists():
            raise ValidationError(publishing.OLD_ADDRESS_MESSAGE, code="old_address", params={"slug": slug})
        return slug

    def clean(self):
        cleaned_data = super().clean()
        if not cleaned_data.get("summary") and cleaned_data.get("body"):
            # As for imported articles: an empty dek defaults to the start of the first paragraph,
            # so listings, feeds and the page's description are never blank.
            cleaned_data["summary"] = default_summary(first_paragraph(cleaned_data["body"]))
        if self.instance.pk is None:
            return cleaned_data
        expected_version = cleaned_data.get("expected_version")
        if expected_version is None:
            raise ValidationError(
                _("This form was sent without the article's version. Reload the page and make your change again."),
                code="no_version",
            )
        try:
            self.locked_article = publishing.lock_for_edit(self.instance.pk, expected_version)
        except publishing.StaleEditError as err:
            self._report_conflict(err.conflict)
            return cleaned_data
        slug = cleaned_data.get("slug")
        if (
            slug
            and slug != self.locked_article.slug
            and publishing.has_public_address(self.locked_article)
            and not cleaned_data.get("change_slug")
        ):
            self.add_error(
                "slug",
                ValidationError(
                    _(
                        "This article has been published at “%(slug)s”. To give it a new address, tick "
                        "“Change the address”; the old one will redirect to the new one."
                    ),
                    code="published_slug",
                    params={"slug": self.locked_article.slug},
                ),
            )
        return cleaned_data

    def _report_conflict(self, conflict: publishing.EditConflict) -> None:
        when = formats.date_format(timezone.localtime(conflict.changed_at), "DATETIME_FORMAT")
        if conflict.changes:
            message = _(
                "%(user)s saved this article at %(when)s, after you opened it, and changed: %(fields)s. "
                "Nothing you typed has been saved or lost: it is still in the form. Their values are "
                "shown under each of those fields. Save again to replace their version with yours."
            )
        else:
            message = _(
                "%(user)s saved this article at %(when)s, after you opened it. Nothing you typed has "
                "been saved or lost: it is still in the form. Compare with the article's history, then "
                "save again to replace their version with yours."
            )
        params = {
            "user": conflict.changed_by,
            "when": when,
            "fields": ", ".join(change.label for change in conflict.changes),
        }
        self.add_error(None, ValidationError(message, code="stale", params=params))
        for change in conflict.changes:
            if change.name in self.fields:
                quoted = Truncator("" if change.value is None else str(change.value)).chars(CONFLICT_QUOTE_CHARS)
                self.add_error(
                    change.name,
                    ValidationError(
                        _("%(user)s changed this to: %(value)s"),
                        code="stale_field",
                        params={"user": conflict.changed_by, "value": quoted or _("(empty)")},
                    ),
                )
        # The next save is a deliberate overwrite of the version the editor has now been shown.
        self.data = self.data.copy()
        self.data[self.add_prefix("expected_version")] = conflict.current_version

    @property
    def model_field_names(self) -> list[str]:
        """The article fields this form edits (the admin may narrow ``Meta.fields`` by fieldsets)."""
        declared = set(self.declared_fields)
        return [name for name in self.fields if name not in declared]


class RevisionCompareForm(forms.Form):
    """Two revisions of one object to compare: by default the newest one and the one before it.

    ``revisions`` is the object's history (newest first) and must not be empty.
    """

    older = forms.ModelChoiceField(queryset=None, required=False)
    newer = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, revisions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["older"].queryset = revisions
        self.fields["newer"].queryset = revisions
        self.revisions = revisions

    def clean(self):
        cleaned_data = super().clean()
        newer = cleaned_data.get("newer") or self.revisions.first()
        older = cleaned_data.get("older") or newer.prev_record or newer
        if (older.history_date, older.pk) > (newer.history_date, newer.pk):
            older, newer = newer, older
        cleaned_data.update(older=older, newer=newer)
        return cleaned_data
