"""GET /invoices/{id}/pdf answers errors as JSON with a JSON content type (they were labelled application/pdf)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_pdf_errors_are_json(api, anon_api):
    for client, status in ((anon_api, 401), (api, 404)):
        response = client.get("/api/v1/invoices/999999/pdf")
        assert response.status_code == status
        assert response["Content-Type"] == "application/json"
        assert "detail" in response.json()
