"""Articles, the Sources that publish them, and the bookkeeping that keeps imports non-destructive."""

import math

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

#: Average adult silent-reading speed used for the reading-time estimate.
WORDS_PER_MINUTE = 230

#: The article fields a seed file provides, and so the fields the importer merges.
SEED_FIELDS = ("title", "summary", "body", "source", "cited_source")


class Source(models.Model):
    """A publisher or outlet: who originally published an article, or whose report it cites."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    slug = models.SlugField(_("slug"), max_length=220, unique=True, allow_unicode=True)
    homepage_url = models.URLField(_("homepage URL"), blank=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("articles:source_detail", kwargs={"slug": self.slug})


class ArticleQuerySet(models.QuerySet):
    """Who may see what, written once and used by views, feeds, sitemaps, search and the admin."""

    def published(self, *, now=None):
        """Published articles whose time has come.

        An article with a future ``published_at`` is *scheduled*: it appears by itself at that moment,
        because visibility is decided at query time rather than by a job flipping a flag.
        """
        return self.filter(status=Article.Status.PUBLISHED, published_at__lte=now or timezone.now())

    def scheduled(self, *, now=None):
        return self.filter(status=Article.Status.PUBLISHED, published_at__gt=now or timezone.now())

    def newest_first(self):
        # The id tie-breaker keeps pagination stable when many articles share a publication time.
        return self.order_by("-published_at", "-id")

    def with_sources(self):
        return self.select_related("source", "cited_source")


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        ARCHIVED = "archived", _("Archived")

    title = models.CharField(_("title"), max_length=300)
    slug = models.SlugField(
        _("slug"),
        max_length=120,
        unique=True,
        allow_unicode=True,
        help_text=_("The address of the article. Derived from the title; never changed by a re-import."),
    )
    summary = models.TextField(_("summary"), blank=True, help_text=_("The dek shown in listings."))
    body = models.TextField(_("body"), help_text=_("Plain text; paragraphs separated by a blank line."))
    source = models.ForeignKey(
        Source,
        verbose_name=_("source"),
        on_delete=models.PROTECT,
        related_name="articles",
        null=True,
        blank=True,
        help_text=_("The publisher from the “Originally published at” line."),
    )
    cited_source = models.ForeignKey(
        Source,
        verbose_name=_("cited outlet"),
        on_delete=models.PROTECT,
        related_name="cited_articles",
        null=True,
        blank=True,
        help_text=_("The outlet from “Read the full report at …”."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(_("publication time"), default=timezone.now, db_index=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    #: Optimistic-locking counter: a form carries the version it was opened at, and a save
    #: from a stale form is refused instead of silently overwriting another editor's change.
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    # --- Import provenance ---------------------------------------------------------------
    seed_identity = models.CharField(
        _("seed identity"),
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        help_text=_("The seed file's name without extension; decides create or update on import."),
    )
    seed_sha256 = models.CharField(_("seed SHA-256"), max_length=64, blank=True, editable=False)
    imported_at = models.DateTimeField(_("imported at"), null=True, blank=True, editable=False)
    edited_since_import = models.BooleanField(_("edited since import"), default=False, editable=False)
    #: What the importer last wrote (title, summary, body and the source names). A re-import
    #: compares three ways (this baseline, the article now, the new seed) to tell which fields an
    #: editor changed and must keep.
    imported_fields = models.JSONField(_("imported fields"), null=True, blank=True, editable=False)
    #: The ``version`` webhooks last announced as public; ``None`` while not announced as public.
    #: Events are derived by comparing it with the article's state, so none is lost if a process dies.
    announced_version = models.PositiveIntegerField(_("announced version"), null=True, blank=True, editable=False)

    objects = ArticleQuerySet.as_manager()
    history = HistoricalRecords(excluded_fields=["imported_fields", "announced_version"])

    class Meta:
        ordering = ["-published_at", "-id"]
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        indexes = [
            models.Index(F("status"), F("published_at").desc(), F("id").desc(), name="article_listing_idx"),
            models.Index(F("source"), F("published_at").desc(), name="article_source_idx"),
            models.Index(F("cited_source"), F("published_at").desc(), name="article_cited_idx"),
            models.Index(fields=["seed_sha256"], name="article_seed_sha_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published", "archived"]), name="article_status_valid"
            ),
            models.CheckConstraint(condition=~Q(slug=""), name="article_slug_not_empty"),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("articles:article_detail", kwargs={"slug": self.slug})

    @property
    def paragraphs(self) -> list[str]:
        return [part for part in self.body.split("\n\n") if part.strip()]

    @property
    def word_count(self) -> int:
        return len(self.body.split())

    @property
    def reading_time_minutes(self) -> int:
        return max(1, math.ceil(self.word_count / WORDS_PER_MINUTE))

    @property
    def is_scheduled(self) -> bool:
        return self.status == self.Status.PUBLISHED and self.published_at > timezone.now()

    @property
    def is_public(self) -> bool:
        return self.status == self.Status.PUBLISHED and self.published_at <= timezone.now()

    def seed_field_values(self) -> dict[str, str | None]:
        """The current values of the fields a seed provides, in the form the importer records."""
        return {
            "title": self.title,
            "summary": self.summary,
            "body": self.body,
            "source": self.source.name if self.source_id else None,
            "cited_source": self.cited_source.name if self.cited_source_id else None,
        }


class SlugRedirect(models.Model):
    """An address an article used to have, kept so old links answer with a 301 to the new one."""

    old_slug = models.SlugField(_("old slug"), max_length=120, unique=True, allow_unicode=True)
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="slug_redirects")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("slug redirect")
        verbose_name_plural = _("slug redirects")

    def __str__(self):
        return f"{self.old_slug} → {self.article.slug}"


class ContentVersion(models.Model):
    """A single counter bumped whenever public content changes.

    It lives in the database, not in a cache, so every gunicorn worker and every host sees the same
    value: caches and ETags keyed on it are invalidated everywhere by the very next request.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    counter = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="content_version_singleton")]

    def __str__(self):
        return f"content version {self.counter}"

    @classmethod
    def current(cls) -> int:
        return cls.objects.filter(pk=1).values_list("counter", flat=True).first() or 0

    @classmethod
    def bump(cls) -> None:
        """Advance the counter atomically (an UPDATE of one row, safe across processes)."""
        updated = cls.objects.filter(pk=1).update(counter=F("counter") + 1, changed_at=timezone.now())
        if not updated:
            cls.objects.get_or_create(pk=1)
            cls.objects.filter(pk=1).update(counter=F("counter") + 1, changed_at=timezone.now())


class ImportRun(models.Model):
    """One run of the importer: who started it with what, when, and what became of its files.

    Written as the run starts (so a run in progress, or one that died, is visible) and completed when
    it ends. Dry runs write nothing, so they leave no run either.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        FAILED = "failed", _("Failed")

    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.RUNNING)
    #: The command line, or what else started the run.
    command = models.TextField(_("command"), blank=True)
    #: The operating-system account and host of a command-line run.
    started_by = models.CharField(_("started by"), max_length=200, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paths = models.JSONField(_("paths"), default=list)
    #: Files found before the run started, where that was counted (admin uploads, the inbox).
    total_files = models.PositiveIntegerField(_("files found"), null=True, blank=True)
    done_files = models.PositiveIntegerField(_("files done"), default=0)
    #: Last sign of life from the process running the import; a running import without one for
    #: ``NEWSROOM_IMPORT_STALE_SECONDS`` lost its worker and is marked failed.
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    #: The background task running it, if it runs as one.
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    #: Uploaded files unpacked for this run, removed when it ends.
    upload_dir = models.TextField(_("upload folder"), blank=True)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    conflicts = models.PositiveIntegerField(_("conflicts"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    exit_status = models.SmallIntegerField(_("exit status"), null=True, blank=True)
    #: Why a failed run stopped.
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("import run")
        verbose_name_plural = _("import runs")

    def __str__(self):
        return f"Import #{self.pk} ({timezone.localtime(self.started_at):%Y-%m-%d %H:%M})"


class ImportOutcome(models.Model):
    """What an import run did to one file, for every file it did not leave unchanged."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        UPDATED = "updated", _("Updated")
        UNCHANGED = "unchanged", _("Unchanged")
        CONFLICT = "conflict", _("Conflict")
        DUPLICATE = "duplicate", _("Duplicate")
        SKIPPED = "skipped", _("Skipped (still being written)")
        REJECTED = "rejected", _("Rejected")

    run = models.ForeignKey(ImportRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="outcomes")
    #: The path as shown to the operator (control characters escaped).
    path = models.TextField(_("file"))
    outcome = models.CharField(_("outcome"), max_length=10, choices=Kind.choices)
    detail = models.TextField(_("detail"), blank=True)
    article = models.ForeignKey(
        Article, verbose_name=_("article"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("import outcome")
        verbose_name_plural = _("import outcomes")
        indexes = [models.Index(fields=["run", "outcome", "id"], name="import_outcome_run_idx")]

    def __str__(self):
        return f"{self.path}: {self.outcome}"


class ImportConflict(models.Model):
    """A field an editor changed that a newer seed changes too, waiting for an editor's choice.

    One per article and field. The editor's value is the article's own; this keeps the value the
    importer last wrote (the merge baseline) and the seed's new value. A newer seed replaces the
    incoming value; a choice in the admin (or ``--overwrite``) resolves it and moves the baseline on.
    """

    article = models.ForeignKey(
        Article, verbose_name=_("article"), on_delete=models.CASCADE, related_name="import_conflicts"
    )
    field = models.CharField(_("field"), max_length=20)
    base_value = models.TextField(_("last imported value"), null=True, blank=True)
    incoming_value = models.TextField(_("seed's new value"), null=True, blank=True)
    #: The file that brought the incoming value, as shown to the operator.
    seed_path = models.TextField(_("seed file"), blank=True)
    run = models.ForeignKey(
        ImportRun, verbose_name=_("import run"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detected_at = models.DateTimeField(_("detected"), default=timezone.now)

    class Meta:
        ordering = ["-detected_at", "-id"]
        verbose_name = _("import conflict")
        verbose_name_plural = _("import conflicts")
        constraints = [
            models.UniqueConstraint(fields=["article", "field"], name="import_conflict_one_per_field"),
            models.CheckConstraint(condition=Q(field__in=SEED_FIELDS), name="import_conflict_seed_field"),
        ]

    def __str__(self):
        return f"{self.article_id}: {self.field}"


class WebhookEndpoint(models.Model):
    """A URL told about article events, each delivery signed with the endpoint's secret."""

    class Event(models.TextChoices):
        PUBLISHED = "published", _("Published")
        UPDATED = "updated", _("Updated")
        CORRECTED = "corrected", _("Corrected")
        UNPUBLISHED = "unpublished", _("Unpublished")

    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(
        _("secret"), max_length=200, help_text=_("Signs every delivery (HMAC-SHA256); share it with the receiver.")
    )
    events = models.JSONField(_("events"), default=list)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self):
        return self.name


class WebhookDelivery(models.Model):
    """One event for one endpoint, with every attempt's outcome: the admin's delivery log."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        RETRYING = "retrying", _("Retrying")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(WebhookEndpoint, verbose_name=_("endpoint"), on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("event"), max_length=20, choices=WebhookEndpoint.Event.choices)
    article = models.ForeignKey(
        Article, verbose_name=_("article"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField(_("payload"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    response_code = models.PositiveSmallIntegerField(_("response code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="webhook_delivery_due_idx")]

    def __str__(self):
        return f"{self.event} → {self.endpoint}"


class TaskSchedule(models.Model):
    """The next run of a periodic task, so exactly one chain of it is ever scheduled.

    A periodic task schedules its own next run through the task framework (``run_after``). The
    ``token`` names the live chain: starting a new chain (the old one was lost with a worker) gives
    a new token, and a run of the old chain that turns up late sees it and does not schedule again.
    """

    name = models.CharField(_("name"), max_length=50, primary_key=True)
    token = models.CharField(_("token"), max_length=32)
    next_run_at = models.DateTimeField(_("next run"))

    class Meta:
        verbose_name = _("task schedule")
        verbose_name_plural = _("task schedules")

    def __str__(self):
        return self.name
