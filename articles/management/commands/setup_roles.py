"""Create or update the "Editor" group: the staff role that edits and publishes, but manages no users."""

from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

EDITOR_GROUP = "Editor"

#: (app label, codename). Publishing is a change of status, so "change" covers it. Deleting is left
#: to administrators: an article's address may be linked from outside, and a source is protected.
EDITOR_PERMISSIONS = [
    ("articles", "add_article"),
    ("articles", "change_article"),
    ("articles", "view_article"),
    ("articles", "add_source"),
    ("articles", "change_source"),
    ("articles", "view_source"),
    ("articles", "view_historicalarticle"),
    ("articles", "view_historicalsource"),
    ("articles", "view_slugredirect"),
    # The importer's log and the conflict inbox; resolving a conflict is an edit (change_article).
    ("articles", "view_importrun"),
    ("articles", "add_importrun"),  # upload seed files to import in the background
    ("articles", "view_importoutcome"),
    ("articles", "view_importconflict"),
]


class Command(BaseCommand):
    help = (
        f"Create the {EDITOR_GROUP!r} group, or reset its permissions to: add/change/view articles and "
        "sources, view their history and old addresses. No user management. Safe to run again."
    )

    def handle(self, *args, verbosity, **options):
        wanted = set(EDITOR_PERMISSIONS)
        permissions = list(
            Permission.objects.select_related("content_type").filter(
                content_type__app_label="articles", codename__in=[codename for _app, codename in wanted]
            )
        )
        missing = wanted - {(p.content_type.app_label, p.codename) for p in permissions}
        if missing:
            raise CommandError(
                "Permissions not found: "
                + ", ".join(sorted(f"{app}.{codename}" for app, codename in missing))
                + ". Run `manage.py migrate` first."
            )
        with transaction.atomic():
            group, created = Group.objects.get_or_create(name=EDITOR_GROUP)
            before = set(group.permissions.values_list("pk", flat=True))
            group.permissions.set(permissions)
        after = {p.pk for p in permissions}
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created the {EDITOR_GROUP!r} group with {len(after)} permissions."))
        elif before != after:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Updated the {EDITOR_GROUP!r} group: {len(after - before)} permissions added, "
                    f"{len(before - after)} removed."
                )
            )
        elif verbosity >= 1:
            self.stdout.write(f"The {EDITOR_GROUP!r} group is up to date.")
        if verbosity >= 2:
            for permission in sorted(permissions, key=lambda p: p.codename):
                self.stdout.write(f"  {permission.content_type.app_label}.{permission.codename}")
