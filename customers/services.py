"""Customer writes, and the subscription row helpers of invoicing's lifecycle.

Entry points called by the API (``customer_create``, ``customer_update``, ``tax_rate_create``) are durable
transactions; the admin saves through their ``*_in_transaction`` variants (its change form runs in a transaction)
and checks its form with :func:`customer_check`, the same rules; ``tax_rate_delete`` runs inside the admin's
delete transaction.

The subscription row helpers (``subscription_row_create``, ``subscription_row_cancel``,
``subscription_row_advance`` and ``subscription_row_advance_locked``) only keep the subscription row right, inside
the caller's transaction. The subscription lifecycle (start, cancel, the period boundary; plan changes and trial
ends) is ``invoicing``'s: what a start, an end or a boundary bills and grants (invoices, plan credits, rollover)
is orchestrated there, in one transaction with the row change. Call these helpers only from invoicing's
lifecycle (``invoicing.services.lifecycle`` and ``invoicing.services.boundary``); tests may call them to set up
a row without its billing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from catalog.models import Plan, PlanVersion
from catalog.overrides import price_overrides_parse
from core.errors import Conflict, ValidationFailed
from core.instants import instant_check
from core.money import currency_allowed
from core.outbox import record_event
from core.rows import row_update

from . import periods
from .models import Customer, Subscription, TaxRate
from .schedule import subscription_first_period, subscription_period_after
from .selectors import subscription_version_for

CANCEL_AT_PERIOD_END = "period_end"
CANCEL_NOW = "now"
CANCEL_CHOICES = (CANCEL_AT_PERIOD_END, CANCEL_NOW)

CUSTOMER_UPDATABLE = (
    "name",
    "email",
    "currency",
    "tax_rates",
    "net_payment_terms",
    "invoice_grace_days",
    "timezone",
    *Customer.ADDRESS_FIELDS,
)

#: ``net_payment_terms`` and ``invoice_grace_days`` are whole days in ``0..DAYS_MAX`` (API.md "Input bounds"): a
#: due date or a grace deadline is an invoice's instant plus that many days, which must stay a real date.
DAYS_MAX = 365
DAY_FIELDS = ("net_payment_terms", "invoice_grace_days")


def days_check(value: Any, *, field: str) -> int:
    """Return ``value`` when it is a whole number of days in ``0..DAYS_MAX``; else ValidationFailed naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DAYS_MAX:
        raise ValidationFailed(f"Must be a whole number of days from 0 to {DAYS_MAX}.", field=field)
    return value


def timezone_check(value: Any) -> str:
    """Return ``value`` when it is an IANA zone name of the zoneinfo database; else ValidationFailed on ``timezone``.

    Rule: a timezone change applies from the next period (``customers.schedule``); the period being served keeps
    its bounds."""
    if not periods.timezone_valid(value):
        raise ValidationFailed(
            f"'{value}' is not an IANA timezone (e.g. UTC, Europe/Paris, America/Los_Angeles).", field="timezone"
        )
    return value


def _check_currency(currency: str) -> None:
    if not currency_allowed(currency):
        raise ValidationFailed(f"Currency '{currency}' is not one this installation accepts.", field="currency")


def _tax_rates_by_code(codes: Iterable[str]) -> list[TaxRate]:
    codes = list(dict.fromkeys(codes))
    found = {rate.code: rate for rate in TaxRate.objects.filter(code__in=codes)}
    missing = [code for code in codes if code not in found]
    if missing:
        raise ValidationFailed(f"Unknown tax rate(s): {', '.join(missing)}.", field="tax_rates")
    return [found[code] for code in codes]


def customer_check(*, customer: Customer | None, data: Mapping[str, Any]) -> list[TaxRate] | None:
    """The rules of :func:`customer_create` (``customer`` None) and :func:`customer_update` for the fields in
    ``data``, without writing anything: the admin's form calls it so each error shows next to its field.

    Returns the tax rates named by ``data["tax_rates"]`` (codes), or None when it is absent. Raises
    ValidationFailed (400) for a currency outside ``settings.CURRENCIES`` or an unknown tax-rate code, and
    Conflict (409) for a currency change while the customer has active subscriptions; day counts outside
    ``0..DAYS_MAX`` are a 400 naming their field.
    """
    for day_field in DAY_FIELDS:
        if day_field in data:
            days_check(data[day_field], field=day_field)
    if "timezone" in data:
        timezone_check(data["timezone"])
    if "currency" in data and (customer is None or data["currency"] != customer.currency):
        _check_currency(data["currency"])
        if customer is not None and customer.subscriptions.filter(status=Subscription.Status.ACTIVE).exists():
            raise Conflict("The currency cannot change while the customer has active subscriptions.", field="currency")
    return _tax_rates_by_code(data["tax_rates"]) if "tax_rates" in data else None


@transaction.atomic(savepoint=False)
def customer_create_in_transaction(
    *,
    external_id: str,
    name: str,
    currency: str,
    email: str = "",
    tax_rates: Iterable[str] = (),
    net_payment_terms: int = 0,
    invoice_grace_days: int = 0,
    timezone: str = "UTC",
    **address: str,
) -> Customer:
    """:func:`customer_create` inside the caller's transaction (the admin's)."""
    unknown = sorted(set(address) - set(Customer.ADDRESS_FIELDS))
    if unknown:
        raise ValidationFailed(f"Unknown field '{unknown[0]}'.", field=unknown[0])
    rates = (
        customer_check(
            customer=None,
            data={
                "currency": currency,
                "tax_rates": tax_rates,
                "net_payment_terms": net_payment_terms,
                "invoice_grace_days": invoice_grace_days,
                "timezone": timezone,
            },
        )
        or []
    )
    customer = Customer(
        external_id=external_id,
        name=name,
        email=email,
        currency=currency,
        net_payment_terms=net_payment_terms,
        invoice_grace_days=invoice_grace_days,
        timezone=timezone,
        **address,
    )
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError:
        raise ValidationFailed(
            f"A customer with external id '{external_id}' already exists.", field="external_id"
        ) from None
    customer.tax_rates.set(rates)
    record_event("customer.created", customer)
    return customer


@transaction.atomic(durable=True)
def customer_create(
    *,
    external_id: str,
    name: str,
    currency: str,
    email: str = "",
    tax_rates: Iterable[str] = (),
    net_payment_terms: int = 0,
    invoice_grace_days: int = 0,
    timezone: str = "UTC",
    **address: str,
) -> Customer:
    """Create a customer. ``tax_rates`` are tax-rate codes; ``address`` the optional ``address_*`` fields.

    400 (ValidationFailed) for a currency outside ``settings.CURRENCIES``, an unknown tax-rate code, day
    counts outside ``0..DAYS_MAX`` or a duplicate ``external_id`` (the database's unique constraint decides,
    not a pre-check).
    """
    return customer_create_in_transaction(
        external_id=external_id,
        name=name,
        currency=currency,
        email=email,
        tax_rates=tax_rates,
        net_payment_terms=net_payment_terms,
        invoice_grace_days=invoice_grace_days,
        timezone=timezone,
        **address,
    )


@transaction.atomic(savepoint=False)
def customer_update_in_transaction(*, customer: Customer, data: Mapping[str, Any]) -> Customer:
    """:func:`customer_update` inside the caller's transaction (the admin's). Returns the stored row."""
    unknown = sorted(set(data) - set(CUSTOMER_UPDATABLE))
    if unknown:
        raise ValidationFailed(f"'{unknown[0]}' cannot be changed.", field=unknown[0])
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    rates = customer_check(customer=customer, data=data)
    for field in CUSTOMER_UPDATABLE:
        if field in data and field != "tax_rates":
            setattr(customer, field, data[field])
    customer.save()
    if rates is not None:
        customer.tax_rates.set(rates)
    return customer


@transaction.atomic(durable=True)
def customer_update(*, customer: Customer, data: dict[str, Any]) -> Customer:
    """PATCH semantics: only the keys present in ``data`` change (``external_id`` is the address, never changed).

    Rule (the design is silent): the currency may change only while the customer has no active subscription,
    because every active subscription bills in its plan's currency, which must match the customer's (409).
    """
    return customer_update_in_transaction(customer=customer, data=data)


@transaction.atomic(durable=True)
def tax_rate_create(*, code: str, name: str, percentage) -> TaxRate:
    """Create a tax rate (``percentage`` a Decimal in [0, 100]); a duplicate code is a 400 on ``code``."""
    rate = TaxRate(code=code, name=name, percentage=percentage)
    try:
        with transaction.atomic():
            rate.save()
    except IntegrityError:
        raise ValidationFailed(f"A tax rate with code '{code}' already exists.", field="code") from None
    return rate


@transaction.atomic(savepoint=False)
def tax_rate_delete(*, rate: TaxRate) -> None:
    """Delete a tax rate no customer uses. Call inside a transaction (the admin's delete runs in one).

    Rule (the design is silent): a rate in use is never deleted; deleting it would silently drop that tax from
    every customer's next invoices. Conflict (409) naming ``tax_rates`` until it is removed from them. The rate's
    row is locked first, so a customer cannot be given the rate between the check and the delete. Issued invoices
    keep their own copy of the rates they applied (``Invoice.tax_breakdown``).
    """
    locked = TaxRate.objects.select_for_update().get(pk=rate.pk)
    users = list(locked.customers.order_by("external_id").values_list("external_id", flat=True)[:6])
    if users:
        named = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
        raise Conflict(
            f"Tax rate {locked.code} is used by customers ({named}); remove it from them first.", field="tax_rates"
        )
    locked.delete()


@transaction.atomic(savepoint=False)
def subscription_row_create(
    *,
    customer: Customer,
    plan: Plan,
    start_at: datetime,
    billing: str = Subscription.Billing.CALENDAR,
    pinned_version: PlanVersion | None = None,
    price_overrides: Any = None,
    trial_days: int | None = None,
) -> Subscription:
    """Create an active subscription row with its first period. Call inside a transaction, only from invoicing's
    lifecycle (``invoicing.services.subscription_start`` bills the first period with it).

    Raises ValidationFailed naming the field: a currency that does not match the plan, a pinned version of
    another plan or not published, a plan with no published version at all (``plan``), a ``start_at`` outside
    the accepted range (``core.instants``) or, unpinned, before the plan's first published version
    takes effect (``start_at``).

    Rule chosen: a subscription pinned to a published version may start before that version's
    ``effective_from``: pinning means "bill every period with this version" (grandfathered), so the
    version's start date chooses nothing for it.
    """
    instant_check(start_at, field="start_at")
    if customer.currency != plan.currency:
        raise ValidationFailed(
            f"The plan bills in {plan.currency}; the customer pays in {customer.currency}.", field="plan"
        )
    if billing not in Subscription.Billing.values:
        raise ValidationFailed(f"Unknown billing '{billing}'.", field="billing")
    if pinned_version is not None and (pinned_version.plan_id != plan.id or not pinned_version.is_published):
        raise ValidationFailed("The pinned version must be a published version of this plan.", field="pinned_version")
    first = subscription_first_period(customer=customer, plan=plan, billing=billing, start_at=start_at)
    subscription = Subscription(
        customer=customer,
        plan=plan,
        pinned_version=pinned_version,
        billing=billing,
        start_at=start_at,
        current_period_start=first.start,
        current_period_end=first.end,
    )
    version = subscription_version_for(subscription=subscription, period_start=first.start)
    if version is None:
        earliest = (
            PlanVersion.objects.filter(plan=plan, status=PlanVersion.Status.PUBLISHED)
            .order_by("effective_from")
            .values_list("effective_from", flat=True)
            .first()
        )
        if earliest is None:
            raise ValidationFailed("The plan has no published version.", field="plan")
        raise ValidationFailed(
            f"The plan's first published version takes effect at {earliest.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}; "
            "a subscription cannot start before it.",
            field="start_at",
        )
    subscription.plan_version = version
    if price_overrides is not None:
        subscription.price_overrides = price_overrides_parse(price_overrides, prices=version.prices.all())
    days = version.trial_days if trial_days is None else days_check(trial_days, field="trial_days")
    subscription.trial_end = start_at + timedelta(days=days) if days else None
    subscription.save()
    return subscription


def _saved(subscription: Subscription, locked: Subscription, fields: list[str]) -> Subscription:
    """Save ``fields`` of the locked row and copy them onto the caller's instance, which is returned.

    The caller keeps working with the object it passed (the boundary reads the new period from it).
    """
    locked.save(update_fields=fields)
    return _copied(subscription, locked, fields)


def _copied(subscription: Subscription, locked: Subscription, fields: list[str]) -> Subscription:
    """Copy ``fields`` (and cached related objects) of the locked row onto the caller's instance."""
    for name in fields:
        field = Subscription._meta.get_field(name)
        setattr(subscription, field.attname, getattr(locked, field.attname))
        if field.is_relation and field.is_cached(locked):
            field.set_cached_value(subscription, field.get_cached_value(locked))
    return subscription


def _lock(subscription: Subscription) -> Subscription:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan", "plan_version", "pinned_version")
        .get(pk=subscription.pk)
    )


@transaction.atomic(savepoint=False)
def subscription_row_price_overrides_set(*, subscription: Subscription, price_overrides: Any) -> Subscription:
    """Set the subscription's negotiated prices (``catalog.overrides``) from its next period on. Call inside a
    transaction, only from invoicing's lifecycle (``invoicing.services.subscription_price_overrides_update``).

    Rule (API.md): a change applies from the next period, so the period being served (and its invoice) keeps the
    overrides in force; the new list waits in ``pending_price_overrides`` until the period boundary moves it into
    ``price_overrides``. ``[]`` removes every override from the next period. Checked against the prices of the
    version billing the current period: an unknown price name, fields of another model, a negative amount are a
    400 naming the field (``price_overrides[0].unit_amount``); an ended subscription is a 409.
    """
    locked = _lock(subscription)
    if locked.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    locked.pending_price_overrides = price_overrides_parse(price_overrides, prices=locked.plan_version.prices.all())
    return _saved(subscription, locked, ["pending_price_overrides"])


@transaction.atomic(savepoint=False)
def subscription_row_cancel(*, subscription: Subscription, at: str, now: datetime) -> Subscription:
    """Mark the row canceled at ``"period_end"`` or ``"now"``; returns ``subscription``, updated. Call inside a
    transaction, only from invoicing's lifecycle (``invoicing.services.subscription_cancel`` bills what ending
    now owes).

    The row is re-read ``FOR UPDATE`` and its state re-checked after locking, so of two concurrent cancels
    one wins and the other sees the new state.

    * ``period_end``: stays ``active`` with ``cancel_at_period_end`` true and ``canceled_at = now``; the period
      boundary (``subscription_row_advance_locked``) ends it.
    * ``now``: ``ended`` with ``ended_at = now`` (``canceled_at = now`` unless already set).

    Conflict (409): the subscription already ended; or ``period_end`` asked again when it is already set to
    end at its period's end (rule chosen: a second identical request is refused, not silently accepted;
    ``now`` after ``period_end`` is allowed and ends it at once).
    """
    if at not in CANCEL_CHOICES:
        raise ValidationFailed(f"'at' must be one of {', '.join(CANCEL_CHOICES)}.", field="at")
    locked = _lock(subscription)
    if locked.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    if at == CANCEL_AT_PERIOD_END:
        if locked.cancel_at_period_end:
            raise Conflict("This subscription is already set to end at its period's end.", code="already_canceling")
        locked.cancel_at_period_end = True
        locked.canceled_at = now
        record_event("subscription.changed", locked)
        return _saved(subscription, locked, ["cancel_at_period_end", "canceled_at"])
    locked.status = Subscription.Status.ENDED
    locked.ended_at = now
    if locked.canceled_at is None:
        locked.canceled_at = now
    record_event("subscription.ended", locked)
    return _saved(subscription, locked, ["status", "ended_at", "canceled_at"])


@transaction.atomic(savepoint=False)
def subscription_row_advance(*, subscription: Subscription, now: datetime) -> Subscription:
    """Move an active subscription row past its current period's end. Call inside a transaction.

    The period boundary (``invoicing.services.boundary``) calls :func:`subscription_row_advance_locked` once the
    ended period's work is done; this variant locks the row itself (tests set rows up with it).
    The row is re-read ``FOR UPDATE`` and its state re-checked after locking; the changes are saved and copied
    onto the ``subscription`` passed in, which is returned.

    * ``cancel_at_period_end``: the subscription ends; ``ended_at`` is the period's end (not ``now``: a late
      billing run must not stretch the subscription).
    * otherwise ``current_period_*`` becomes the next period of the schedule (``periods.next_period``, from
      the original anchor) and ``plan_version`` the version for that period's start (pinned, else the one in
      effect then).

    One period per call: a caller catching up several boundaries calls it once per boundary.
    Conflict (409): already ended, or the period has not ended by ``now``.
    """
    locked = _lock(subscription)
    _advance_row(locked, now=now, next_version=None, history=True)
    fields = (
        ["status", "ended_at"]
        if locked.status == Subscription.Status.ENDED
        else [
            "current_period_start",
            "current_period_end",
            "plan_version",
            "price_overrides",
            "pending_price_overrides",
        ]
    )
    return _copied(subscription, locked, fields)


def subscription_row_advance_locked(
    *, subscription: Subscription, now: datetime, next_version: PlanVersion | None = None
) -> Subscription:
    """:func:`subscription_row_advance` for a row the caller already holds ``FOR UPDATE`` (the period boundary).

    Call inside a transaction, with ``subscription`` fetched ``SELECT ... FOR UPDATE`` in it and its state
    re-checked: the row is not locked or read again. ``next_version`` is the version for the next period
    when the caller already resolved it (``subscription_version_for`` at the next period's start), so it
    is not looked up twice. The instance passed in is updated in place and returned.

    Rule chosen (change history): advancing to the next period is the system's own bookkeeping and writes
    **no** history row; the new period stays visible on the subscription row itself and on the invoice
    of the ended period (``period_start``/``period_end``/``billing_boundary_at``), so the history row only
    duplicated them and cost one insert per invoice in a run. Ending at the period's end (a cancellation
    taking effect) is a state change and keeps its history row.
    """
    _advance_row(subscription, now=now, next_version=next_version, history=False)
    return subscription


def _advance_row(locked: Subscription, *, now: datetime, next_version: PlanVersion | None, history: bool) -> None:
    """Move the locked row past its period's end and save it (rules: ``subscription_row_advance``)."""
    if locked.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    if locked.current_period_end > now:
        raise Conflict(
            f"The current period runs until {locked.current_period_end.isoformat()}; nothing to advance.",
            code="period_not_ended",
        )
    if locked.cancel_at_period_end:
        locked.status = Subscription.Status.ENDED
        locked.ended_at = locked.current_period_end
        locked.save(update_fields=["status", "ended_at"])
        record_event("subscription.ended", locked)
        return
    following = subscription_period_after(locked, locked.current_period_end)
    version = next_version or subscription_version_for(subscription=locked, period_start=following.start)
    if version is None:  # only if a version were withdrawn; never bill a period with no price sheet
        raise Conflict("The plan has no published version in effect for the next period.", code="no_version")
    locked.current_period_start = following.start
    locked.current_period_end = following.end
    locked.plan_version = version
    fields = ["current_period_start", "current_period_end", "plan_version"]
    if locked.pending_price_overrides is not None:  # a PATCH applies from the next period
        locked.price_overrides, locked.pending_price_overrides = locked.pending_price_overrides, None
        fields += ["price_overrides", "pending_price_overrides"]
    if history:
        locked.save(update_fields=fields)
    else:  # no history row (see subscription_row_advance_locked): one UPDATE whose text is built once
        row_update(locked, fields)


# Plan changes (``invoicing.services.changes`` bills them): the rows only, inside the caller's transaction.


def subscription_row_successor_create(
    *,
    previous: Subscription,
    plan: Plan,
    version: PlanVersion,
    pinned_version: PlanVersion | None,
    anchor: datetime,
    period: periods.Period,
    trial_end: datetime | None,
) -> Subscription:
    """The subscription that replaces ``previous`` on ``plan`` from ``period.start``. Call inside a transaction,
    only from invoicing's plan changes, holding ``previous`` locked.

    ``anchor`` becomes its ``start_at``, the instant its schedule counts from (DESIGN.md: anniversary keeps the
    old anchor; calendar starts at the change); ``period`` is its first period, which may be a part of a schedule
    period. ``previous_subscription`` is a one-to-one link: the database refuses a second successor.
    """
    subscription = Subscription(
        customer=previous.customer,
        plan=plan,
        plan_version=version,
        pinned_version=pinned_version,
        billing=previous.billing,
        start_at=anchor,
        current_period_start=period.start,
        current_period_end=period.end,
        trial_end=trial_end,
        previous_subscription=previous,
    )
    subscription.save()
    return subscription


def subscription_row_end_for_change(*, locked: Subscription, at: datetime) -> Subscription:
    """End the locked row at ``at`` because a plan change replaces it (its scheduled change is consumed).

    Call inside a transaction holding the row ``FOR UPDATE``; 409 when it has ended already.
    """
    if locked.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    locked.status = Subscription.Status.ENDED
    locked.ended_at = at
    locked.scheduled_plan = None
    locked.scheduled_pinned_version = None
    locked.save(update_fields=["status", "ended_at", "scheduled_plan", "scheduled_pinned_version"])
    return locked


def subscription_row_schedule_change(
    *, locked: Subscription, plan: Plan | None, pinned_version: PlanVersion | None = None
) -> Subscription:
    """Set (``plan``) or clear (``None``) the change scheduled for the locked row's period end.

    Call inside a transaction holding the row ``FOR UPDATE``. 409 when the subscription has ended; clearing
    when nothing is scheduled is a 409 too (``no_scheduled_change``).
    """
    if locked.status == Subscription.Status.ENDED:
        raise Conflict("This subscription has already ended.", code="subscription_ended")
    if plan is None and locked.scheduled_plan_id is None:
        raise Conflict("This subscription has no scheduled plan change.", code="no_scheduled_change")
    locked.scheduled_plan = plan
    locked.scheduled_pinned_version = pinned_version if plan is not None else None
    locked.save(update_fields=["scheduled_plan", "scheduled_pinned_version"])
    record_event("subscription.changed", locked)  # a plan change scheduled or canceled
    return locked
