"""Editorial writes: status changes in bulk, deliberate address changes, and conflict-checked edits.

The admin only calls these functions; they hold the rules.

* **Bulk status changes** run as one ``UPDATE`` rather than a ``save()`` per article, so they do by
  hand what the ``post_save`` signals would have done: bump the content version (caches and ETags),
  record a simple-history revision per article and an admin ``LogEntry`` per article, so the history
  of every article shows who published or archived it and when.
* **Safe concurrent edits.** An edit form carries the ``Article.version`` it was opened at.
  :func:`lock_for_edit` locks the row for the rest of the transaction and refuses a stale version
  with a :class:`StaleEditError` describing the other change; :func:`save_edit` then saves and
  increments the version while the lock is held, so check and increment are one atomic step. (On
  SQLite, ``select_for_update`` is a no-op but the project's ``IMMEDIATE`` transactions serialise
  writers, which gives the same guarantee.)
* **Addresses.** Once an article has been published its slug is its public address: changing it
  records a :class:`~articles.models.SlugRedirect` so old links answer with a 301.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from .models import Article, ContentVersion, SlugRedirect

#: Fields that belong to the importer, never written from an edit form. A revert builds its form
#: instance from an old revision, so they are re-read from the locked row: ``save(update_fields=…)``
#: keeps them out of the UPDATE, and copying them keeps the revision recorded for the save truthful.
_PROTECTED_FIELDS = ("seed_identity", "seed_sha256", "imported_at", "imported_fields")

OLD_ADDRESS_MESSAGE = _(
    "“%(slug)s” is an old address of another article and still redirects there. Choose another slug."
)


@dataclass(frozen=True)
class StatusChange:
    """The outcome of a bulk status change: the articles changed, and how many already had it."""

    status: str
    changed: tuple[Article, ...]
    unchanged: int


@dataclass(frozen=True)
class FieldChange:
    """A field another editor changed after the form was opened, and the value it has now."""

    name: str
    label: str
    value: object


@dataclass(frozen=True)
class EditConflict:
    """Who saved the article after the form was opened, when, and what they changed."""

    current_version: int
    changed_by: str
    changed_at: datetime
    #: Empty when the revision the form was opened at is no longer in the history.
    changes: tuple[FieldChange, ...]


class StaleEditError(Exception):
    """The article was saved by someone else after the form was opened."""

    def __init__(self, conflict: EditConflict):
        self.conflict = conflict
        super().__init__(
            f"article saved by {conflict.changed_by} at {conflict.changed_at:%Y-%m-%d %H:%M} "
            f"(now version {conflict.current_version})"
        )


# --- Bulk status changes ----------------------------------------------------------------------


def publish(articles: QuerySet[Article], *, user) -> StatusChange:
    """Publish the articles. Their publication time is kept: a future one means *scheduled*."""
    return set_status(articles, Article.Status.PUBLISHED, user=user)


def unpublish(articles: QuerySet[Article], *, user) -> StatusChange:
    """Take the articles off the site by turning them back into drafts."""
    return set_status(articles, Article.Status.DRAFT, user=user)


def archive(articles: QuerySet[Article], *, user) -> StatusChange:
    return set_status(articles, Article.Status.ARCHIVED, user=user)


def set_status(articles: QuerySet[Article], status: str, *, user) -> StatusChange:
    """Give every article in ``articles`` the ``status``, recording a revision and a log entry each.

    Articles that already have the status are left alone (no new version, no revision), so running
    the same action twice is harmless and the counts tell the editor what really changed.
    """
    if status not in Article.Status.values:
        raise ValueError(f"unknown article status {status!r}")
    with transaction.atomic():
        # Lock the selected rows so a concurrent edit form sees the new version and reports a conflict.
        locked = list(
            Article.objects.select_for_update()
            .filter(pk__in=articles.order_by().values("pk"))
            .order_by("pk")  # the importer locks in pk order too, so the two never deadlock
            .values_list("pk", "status")
        )
        to_change = [pk for pk, current in locked if current != status]
        if not to_change:
            return StatusChange(status=status, changed=(), unchanged=len(locked))
        now = timezone.now()
        Article.objects.filter(pk__in=to_change).update(status=status, version=F("version") + 1, updated_at=now)
        changed = tuple(Article.objects.filter(pk__in=to_change).order_by("pk"))
        label = Article.Status(status).label
        Article.history.bulk_history_create(
            changed,
            update=True,
            default_user=user,
            default_date=now,
            default_change_reason=f"Status set to {label} (bulk action)",
        )
        LogEntry.objects.log_actions(
            user_id=user.pk,
            queryset=changed,
            action_flag=CHANGE,
            change_message=[{"changed": {"fields": [str(capfirst(Article._meta.get_field("status").verbose_name))]}}],
        )
        ContentVersion.bump()
    return StatusChange(status=status, changed=changed, unchanged=len(locked) - len(changed))


# --- Conflict-checked edits ---------------------------------------------------------------------


def lock_for_edit(pk: int, expected_version: int) -> Article:
    """Lock the article for the rest of the current transaction and check nobody saved it since.

    Must run inside ``transaction.atomic()`` (the admin's change view is); pass the returned
    article to :func:`save_edit` in the same transaction. Raises :class:`StaleEditError` if the
    article's version is no longer ``expected_version``, and ``Article.DoesNotExist`` if it is gone.
    """
    current = Article.objects.select_for_update().get(pk=pk)
    if current.version != expected_version:
        raise StaleEditError(describe_conflict(current, expected_version))
    return current


def describe_conflict(current: Article, opened_version: int) -> EditConflict:
    """Who changed ``current`` after ``opened_version`` and which fields, from its history."""
    history = current.history.select_related("history_user")
    latest = history.first()
    opened = history.filter(version=opened_version).first()
    changes: tuple[FieldChange, ...] = ()
    if latest is not None and opened is not None:
        delta = latest.diff_against(opened)
        changes = tuple(
            FieldChange(
                name=change.field,
                label=str(capfirst(Article._meta.get_field(change.field).verbose_name)),
                value=getattr(current, change.field),
            )
            for change in sorted(delta.changes, key=lambda change: _field_order(change.field))
        )
    if latest is not None and latest.history_user is not None:
        changed_by = latest.history_user.get_username()
    else:
        changed_by = "someone"
    return EditConflict(
        current_version=current.version,
        changed_by=changed_by,
        changed_at=latest.history_date if latest is not None else current.updated_at,
        changes=changes,
    )


def _field_order(name: str) -> int:
    return [field.name for field in Article._meta.fields].index(name)


def save_edit(article: Article, *, locked: Article, fields: Iterable[str]) -> None:
    """Save an editor's changes to ``fields`` of ``article`` over the ``locked`` row.

    ``locked`` comes from :func:`lock_for_edit` in the same transaction. The version is incremented;
    the import provenance is taken from the database, not from the form instance (which, for a
    revert, was rebuilt from an old revision); an imported article is marked as edited since import.
    A changed public address is remembered as a redirect.
    """
    fields = list(fields)
    for name in _PROTECTED_FIELDS:
        setattr(article, name, getattr(locked, name))
    article.version = locked.version + 1
    article.edited_since_import = locked.edited_since_import or locked.seed_identity is not None
    if "slug" in fields and article.slug != locked.slug and has_public_address(locked):
        remember_old_address(locked.slug, article)
    article.save(update_fields=[*fields, "version", "edited_since_import", "updated_at"])


def has_public_address(article: Article) -> bool:
    """Whether the article's slug may be linked from outside: it is or has been published."""
    return article.status != Article.Status.DRAFT


def change_slug(article: Article, new_slug: str) -> None:
    """Give ``article`` a new address deliberately, keeping the old one as a redirect.

    For code outside the admin form (which goes through :func:`save_edit`). The slug is validated
    like a form would (format, uniqueness among articles and old addresses of other articles) and
    a ``ValidationError`` raised for a bad one.
    """
    with transaction.atomic():
        locked = Article.objects.select_for_update().get(pk=article.pk)
        if new_slug == locked.slug:
            return
        article.slug = new_slug
        article.full_clean(exclude=[f.name for f in Article._meta.fields if f.name != "slug"])
        if SlugRedirect.objects.filter(old_slug=new_slug).exclude(article=article).exists():
            raise ValidationError(
                {"slug": ValidationError(OLD_ADDRESS_MESSAGE, code="old_address", params={"slug": new_slug})}
            )
        if has_public_address(locked):
            remember_old_address(locked.slug, article)
        article.version = locked.version + 1
        article.save(update_fields=["slug", "version", "updated_at"])


def remember_old_address(old_slug: str, article: Article) -> None:
    """Keep ``old_slug`` answering with a redirect to ``article``.

    Going back to an earlier address drops that address's redirect, which would otherwise shadow the
    article it points to.
    """
    SlugRedirect.objects.filter(old_slug=article.slug, article=article).delete()
    SlugRedirect.objects.update_or_create(old_slug=old_slug, defaults={"article": article})
