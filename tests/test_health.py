"""/healthz: 200 while the database answers, 503 when it does not, never cached, never redirected."""

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.urls import reverse

HEALTHZ = reverse("articles:healthz")


@pytest.mark.django_db
def test_healthy(client):
    response = client.get(HEALTHZ)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_head_is_answered(client):
    assert client.head(HEALTHZ).status_code == 200


@pytest.mark.django_db
def test_only_safe_methods(client):
    assert client.post(HEALTHZ).status_code == 405


@pytest.mark.django_db
def test_database_failure_is_503(client, caplog):
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("connection refused")):
        response = client.get(HEALTHZ)
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert "no-store" in response["Cache-Control"]
    assert "database did not answer" in caplog.text


@pytest.mark.django_db
def test_failing_query_is_503(client):
    broken = mock.MagicMock()
    broken.__enter__.return_value.execute.side_effect = OperationalError("server closed the connection")
    with mock.patch.object(connection, "cursor", return_value=broken):
        assert client.get(HEALTHZ).status_code == 503


@pytest.mark.django_db
def test_not_redirected_to_https(client, settings):
    """Load balancers probe over plain HTTP; a 301 to HTTPS would mark every instance down."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    assert client.get(HEALTHZ).status_code == 200


@pytest.mark.django_db
def test_queries_once(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        client.get(HEALTHZ)
