"""``manage.py schedule_tasks``: start the periodic background tasks that are not already scheduled."""

from django.core.management.base import BaseCommand

from articles import jobs


class Command(BaseCommand):
    help = (
        "Schedule the periodic tasks (webhook announcements and housekeeping every NEWSROOM_WEBHOOK_INTERVAL "
        "seconds; the inbox every NEWSROOM_INBOX_INTERVAL seconds when NEWSROOM_INBOX is set). Safe to run "
        "at every start: a task already scheduled is left alone, one lost with a worker is started again."
    )

    def handle(self, *args, verbosity, **options):
        for name, interval in jobs.periodic_intervals().items():
            started = jobs.ensure_scheduled(name, interval=interval)
            if verbosity >= 1:
                state = "scheduled" if started else "already scheduled"
                self.stdout.write(f"{name}: {state}, every {interval:g} s")
