"""What a period boundary works with, as typed values passed explicitly (never attributes set on model rows).

* :class:`BoundaryContext`: what the boundary's locks read along (the customer's tax rates, whether it has a
  wallet, the version for the next period) and what a run read beforehand for a batch of subscriptions (its
  :class:`UsageBatch` and its price sheets, :class:`PriceSheet`). ``locks.boundary_lock`` returns it with the locked
  subscription; :func:`boundary_context_read` builds it with plain queries for callers holding the locks already.
  A context describes **one** boundary (``boundary_at``): a boundary may create the customer's plan-credit wallet,
  so a later boundary, even in the same transaction, reads a new context (``has_wallets`` would be stale).
* :class:`PriceSheet`: a plan version's prices (with tiers, meters and meter filters) and plan credit grants,
  read together by :func:`price_sheets_read`. Nothing keeps them beyond the batch that read them: a meter's
  filters may be edited in the admin at any time, and the next read sees the edit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from catalog.models import PlanCreditGrant, PlanVersion, Price
from customers.models import Customer, Subscription
from customers.selectors import subscription_version_for
from wallets.models import Wallet

#: A customer's tax rates as ``(code, percentage)``, ordered by code.
TaxRates = tuple[tuple[str, Decimal], ...]
#: Usage values of a batch: ``{(customer_external_id, meter_id): quantity}``.
UsageValues = Mapping[tuple[str, int], Decimal]


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """Usage aggregated beforehand for the subscriptions sharing one period and plan version (batch runs)."""

    period_start: datetime
    period_end: datetime
    plan_version_id: int
    values: UsageValues

    def for_period(self, start: datetime, end: datetime, plan_version_id: int) -> UsageValues | None:
        """The values when they were aggregated for ``[start, end)`` and that version, else ``None`` (query
        the meters instead). The ended period is in the past, so events stored later would be late for a
        per-subscription query too."""
        if (start, end, plan_version_id) == (self.period_start, self.period_end, self.plan_version_id):
            return self.values
        return None


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """One plan version's prices (tiers, meter and its filters, plan read along) and plan credit grants."""

    prices: tuple[Price, ...]
    credit_grants: tuple[PlanCreditGrant, ...]


#: Price sheets by plan version id.
PriceSheets = Mapping[int, PriceSheet]
NO_SHEETS: PriceSheets = MappingProxyType({})


def _prices_read(version_ids: Iterable[int]) -> dict[int, list[Price]]:
    rows: dict[int, list[Price]] = {pk: [] for pk in version_ids}
    prices = (
        Price.objects.filter(plan_version_id__in=list(rows))
        .select_related("meter", "plan_version__plan")
        .prefetch_related("tiers", "meter__filters")
        .order_by("position", "id")
    )
    for price in prices:
        rows[price.plan_version_id].append(price)
    return rows


def price_sheets_read(version_ids: Iterable[int]) -> dict[int, PriceSheet]:
    """The price sheets of these versions, in four queries whatever their number (prices, tiers, filters, grants)."""
    prices = _prices_read(version_ids)
    grants: dict[int, list[PlanCreditGrant]] = {pk: [] for pk in prices}
    for grant in PlanCreditGrant.objects.filter(plan_version_id__in=list(prices)).order_by("priority", "id"):
        grants[grant.plan_version_id].append(grant)
    return {pk: PriceSheet(prices=tuple(prices[pk]), credit_grants=tuple(grants[pk])) for pk in prices}


def version_prices(version: PlanVersion, sheets: PriceSheets = NO_SHEETS) -> tuple[Price, ...]:
    """The version's prices in position order: from ``sheets`` when it holds the version, else read now."""
    sheet = sheets.get(version.pk)
    if sheet is not None:
        return sheet.prices
    return tuple(_prices_read([version.pk])[version.pk])


def version_credit_grants(version: PlanVersion, sheets: PriceSheets = NO_SHEETS) -> tuple[PlanCreditGrant, ...] | None:
    """The version's plan credit grants from ``sheets``; ``None`` when it does not hold them (the wallets
    service reads them itself)."""
    sheet = sheets.get(version.pk)
    return None if sheet is None else sheet.credit_grants


def tax_rates_of(customer: Customer) -> TaxRates:
    """The customer's tax rates as ``(code, percentage)``, read now; they apply to every line (DESIGN.md)."""
    return tuple((r.code, r.percentage) for r in customer.tax_rates.all().order_by("code"))


@dataclass(frozen=True, slots=True)
class BoundaryContext:
    """What one boundary of one subscription (at ``boundary_at``) is billed with; see the module docstring.

    ``next_version``: the version for the period starting at ``boundary_at`` (the pinned one for a pinned
    subscription), as an instance or as the id the lock read; ``None`` when none is in effect.
    ``usage``/``sheets``: what a run read beforehand (each used only when it matches; else read now).
    """

    customer: Customer
    boundary_at: datetime
    tax_rates: TaxRates
    has_wallets: bool
    next_version: PlanVersion | int | None
    usage: UsageBatch | None = None
    sheets: PriceSheets = field(default_factory=lambda: NO_SHEETS)
    #: Whether the customer has an active applied coupon (``False``: the invoice's discount reads nothing).
    has_coupons: bool = True


def boundary_context_read(*, subscription: Subscription) -> BoundaryContext:
    """The context of the subscription's due boundary, read with plain queries. Call inside a transaction
    holding the customer and subscription locks (``subscription.customer`` is the locked customer)."""
    customer = subscription.customer
    return BoundaryContext(
        customer=customer,
        boundary_at=subscription.current_period_end,
        tax_rates=tax_rates_of(customer),
        has_wallets=Wallet.objects.filter(customer=customer).exists(),
        next_version=subscription_version_for(subscription=subscription, period_start=subscription.current_period_end),
    )
