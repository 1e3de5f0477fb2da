"""Catalog domain errors (BillingError subclasses, mapped to HTTP by core.api)."""

from __future__ import annotations

from core.errors import Conflict, ValidationFailed


class CatalogInvalid(ValidationFailed):
    """Bad catalog input (400) naming *every* bad field by its path, e.g. ``prices[1].tiers``.

    ``errors`` maps a field path to its messages. List indexes in paths are 0-based, as in the JSON
    array they point into. ``field``/``message`` hold the first error, so code that reads a single
    ``ValidationFailed`` keeps working.
    """

    def __init__(self, errors: dict[str, list[str]]):
        field = next(iter(errors))
        super().__init__(errors[field][0], field=field)
        self.errors = errors

    def as_dict(self) -> dict:
        return {**self.errors, "code": self.code}


class VersionPublished(Conflict):
    """A published plan version (or one of its prices, tiers, entitlements, grants) cannot change (409)."""

    code = "version_published"
