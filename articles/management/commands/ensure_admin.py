"""Create the first admin account once and say where to log in.

On the first run it creates a superuser (from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD,
or ``admin`` with a generated password) and prints the password once; it is never stored in clear.
Later runs only print where to log in.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first superuser if there is none, and print where to log in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="The admin address to print.")

    def handle(self, *args, url, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write(f"Log in at {url} with your admin account.")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        if User.objects.filter(username=username).exists():
            # Someone made this account on purpose (inactive, or not a superuser): never take it over.
            self.stdout.write(
                self.style.WARNING(
                    f"An account {username!r} exists but is not an active superuser; none was created. "
                    f"Create one with: python manage.py createsuperuser"
                )
            )
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created the admin account {username!r}."))
        if generated:
            self.stdout.write(f"Log in at {url} as {username} with password: {password}")
            self.stdout.write(self.style.WARNING("This password is shown only once; change it after logging in."))
        else:
            self.stdout.write(f"Log in at {url} as {username} (password from DJANGO_SUPERUSER_PASSWORD).")
