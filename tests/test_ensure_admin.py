"""``ensure_admin``: the first admin account for `make run`, created once, never taken over."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def ensure_admin():
    out = StringIO()
    call_command("ensure_admin", url="http://127.0.0.1:8000/admin/", stdout=out)
    return out.getvalue()


def test_first_run_creates_an_admin_and_prints_the_generated_password_once(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    first = ensure_admin()
    password = first.split("with password: ")[1].split()[0]
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    second = ensure_admin()
    assert password not in second
    assert "Log in at http://127.0.0.1:8000/admin/" in second
    assert get_user_model().objects.count() == 1


def test_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "chief")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long pass phrase")
    output = ensure_admin()
    assert "a long pass phrase" not in output
    assert get_user_model().objects.get(username="chief").check_password("a long pass phrase")


def test_an_existing_non_superuser_account_of_that_name_is_not_taken_over(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    get_user_model().objects.create_user("admin", password="theirs")
    output = ensure_admin()
    assert "exists but is not an active superuser" in output
    user = get_user_model().objects.get(username="admin")
    assert not user.is_superuser and user.check_password("theirs")
