"""Domain errors. Services raise these; one DRF exception handler maps them to HTTP (core.api).

Each error has a stable string ``code`` (like Lago's failure codes) and, for input errors, the ``field``
it is about, so API clients and admin messages can name what was wrong.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every domain error. ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "billing_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        if self.field == "code":
            # An input field named "code" (a tax rate's) keeps its name and message; the error code moves aside.
            return {"code": [self.message], "error_code": self.code}
        if self.field:
            return {self.field: [self.message], "code": self.code}
        return {"detail": self.message, "code": self.code}


class ValidationFailed(BillingError):
    """Bad input (400), naming the field."""

    status = 400
    code = "invalid"


class NotFound(BillingError):
    status = 404
    code = "not_found"


class Conflict(BillingError):
    """The action is not allowed in the object's current state (409)."""

    status = 409
    code = "conflict"
