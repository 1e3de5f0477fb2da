"""Path segments that look like digits to Python but are not ASCII digits are a JSON 404, never a 500."""

import pytest

pytestmark = pytest.mark.django_db


def test_superscript_version_number_is_a_json_404(api):
    api.post("/api/v1/plans", {"key": "p1", "name": "P", "currency": "USD", "interval": "month"}, format="json")
    response = api.get("/api/v1/plans/p1/versions/²")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
