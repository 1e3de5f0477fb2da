"""A plan version's minimum commitment and progressive billing thresholds: their input rules and stored form.

DESIGN.md "Commitments and progressive billing"; API.md's version fields ``minimum_commitment`` (money or null)
and ``progressive_thresholds`` (``[{"amount": "200.00", "recurring": false}]``). The API, the admin and
publishing check them with :func:`version_terms_validate`. Rules (docs/billing-rules.md):

* ``minimum_commitment`` is null (no minimum) or an amount greater than 0 in the plan's currency;
* each threshold ``amount`` is greater than 0; the amounts increase strictly in the order given;
* at most one threshold is ``recurring``, and it is the last (it fires at the highest fixed threshold plus
  every multiple of its amount, so it has to come after them);
* thresholds need at least one usage price on the version: progressive billing invoices usage.

Each refusal is a 400 naming the field itself (``minimum_commitment``, ``progressive_thresholds``); a message
about one threshold says which (``Threshold 2: ...``, 1-based as people count).
Thresholds are stored as JSON with each amount as decimal text, read back with :func:`thresholds_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .validation import FieldErrors, bool_parse, decimal_parse, items_parse

MAX_THRESHOLDS = 50
COMMITMENT = "minimum_commitment"
THRESHOLDS = "progressive_thresholds"


@dataclass(frozen=True)
class Threshold:
    """One progressive billing threshold: a lifetime usage amount (plan currency) and whether it recurs."""

    amount: Decimal
    recurring: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"amount": f"{self.amount:f}", "recurring": self.recurring}


def thresholds_of(stored: Any) -> tuple[Threshold, ...]:
    """The thresholds stored on a version (``PlanVersion.progressive_thresholds``), in order."""
    return tuple(Threshold(Decimal(str(row["amount"])), bool(row.get("recurring"))) for row in stored or ())


def _threshold_parse(index: int, row: Mapping[str, Any], errors: FieldErrors) -> Threshold | None:
    scratch = FieldErrors()
    unknown = sorted(set(row) - {"amount", "recurring"})
    if unknown:
        scratch.add(THRESHOLDS, f"Unknown field(s): {', '.join(unknown)}; a threshold has amount and recurring.")
    amount = decimal_parse(row.get("amount"), THRESHOLDS, scratch, required=True, positive=True)
    recurring = bool_parse(row.get("recurring"), THRESHOLDS, scratch, default=False)
    for message in scratch.items.get(THRESHOLDS, []):
        errors.add(THRESHOLDS, f"Threshold {index + 1}: {message}")
    return None if scratch.items or amount is None else Threshold(amount, recurring)


def version_terms_validate(
    *,
    minimum_commitment: Any,
    progressive_thresholds: Any,
    has_usage_prices: bool | None,
    errors: FieldErrors,
) -> tuple[Decimal | None, list[dict[str, Any]]]:
    """Check the two fields (module rules); returns ``(commitment or None, thresholds as stored JSON)``.

    ``has_usage_prices``: whether the version has a usage price; ``None`` skips that rule (an admin draft
    whose prices are saved after its own fields; publishing checks it). Errors are added to ``errors``.
    """
    commitment = decimal_parse(minimum_commitment, COMMITMENT, errors, positive=True)
    rows = items_parse(progressive_thresholds, THRESHOLDS, errors, limit=MAX_THRESHOLDS)
    thresholds = [_threshold_parse(i, row, errors) for i, row in enumerate(rows)]
    if any(t is None for t in thresholds):
        return commitment, []
    valid: list[Threshold] = [t for t in thresholds if t is not None]
    for i in range(1, len(valid)):
        if valid[i].amount <= valid[i - 1].amount:
            errors.add(
                THRESHOLDS,
                f"Threshold {i + 1} ({valid[i].amount:f}) must be greater than threshold {i} "
                f"({valid[i - 1].amount:f}): thresholds increase.",
            )
    recurring = [i for i, t in enumerate(valid) if t.recurring]
    if len(recurring) > 1:
        errors.add(
            THRESHOLDS,
            f"At most one recurring threshold; thresholds {recurring[0] + 1} and "
            f"{recurring[1] + 1} are both recurring.",
        )
    elif recurring and recurring[0] != len(valid) - 1:
        errors.add(THRESHOLDS, f"The recurring threshold (threshold {recurring[0] + 1}) must be the last one.")
    if valid and has_usage_prices is False:
        errors.add(THRESHOLDS, "Progressive billing invoices usage: this version has no usage price.")
    return commitment, [t.as_json() for t in valid]
