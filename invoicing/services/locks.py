"""The locks an invoice-run boundary starts with (:func:`boundary_lock`), as SQL built once per process.

A boundary locks its customer, then its subscription (lock order: customer -> wallets -> subscription ->
invoice, see ``boundary``). Through the ORM these two reads cost more CPU to compile (joins, subqueries)
than everything else the boundary does in Python, so their SQL is generated once from the models' own
metadata (table and column names) and the rows become model instances through ``Model.from_db``, the
documented way to build instances from database values. Nothing here writes.

What the two reads carry along goes into the returned :class:`~.context.BoundaryContext`, so the boundary
needs no further query for it:

* with the customer: whether it has any wallet, whether it has an active applied coupon, and its tax rates
  ordered by code;
* with the subscription: its plan, current version and pinned version (set on the instance as
  ``select_related`` would), and the id of the plan's published version in effect at ``current_period_end``
  (same rule as ``catalog.selectors.plan_version_in_effect``: latest ``effective_from <= at``, then highest
  number).
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models import Model

from catalog.models import Plan, PlanVersion
from core.prepared import prepared_cursor
from customers.models import Customer, Subscription, TaxRate
from wallets.models import Wallet

from ..models import AppliedCoupon
from .context import NO_SHEETS, BoundaryContext, PriceSheets, TaxRates, UsageBatch


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns(model: type[Model], alias: str) -> tuple[list[str], list[str]]:
    """``(["alias"."column", ...], [attname, ...])`` of the model's concrete fields, in field order."""
    fields = model._meta.concrete_fields
    return [f"{alias}.{_q(f.column)}" for f in fields], [f.attname for f in fields]


def _instance(model: type[Model], attnames: list[str], values) -> Model | None:
    """A model instance from a row slice (``None`` for an outer join that found nothing)."""
    if values[0] is None:
        return None
    fields = model._meta.concrete_fields
    converted = [
        f.from_db_value(v, None, connection) if v is not None and hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, attnames, converted)


@cache
def _customer_sql() -> tuple[str, list[str]]:
    cols, names = _columns(Customer, "c")
    through = Customer.tax_rates.through
    link = through._meta
    customer_col = link.get_field("customer").column
    rate_col = link.get_field("taxrate").column
    rates = (
        f"FROM {_q(TaxRate._meta.db_table)} t JOIN {_q(link.db_table)} ct ON ct.{_q(rate_col)} = t.id "
        f"WHERE ct.{_q(customer_col)} = c.id ORDER BY t.code, t.id"
    )
    sql = (
        f"SELECT {', '.join(cols)}, "
        f"EXISTS (SELECT 1 FROM {_q(Wallet._meta.db_table)} w WHERE "
        f"w.{_q(Wallet._meta.get_field('customer').column)} = c.id), "
        f"ARRAY(SELECT t.code {rates}), ARRAY(SELECT t.percentage {rates}), "
        f"EXISTS (SELECT 1 FROM {_q(AppliedCoupon._meta.db_table)} ac WHERE "
        f"ac.{_q(AppliedCoupon._meta.get_field('customer').column)} = c.id AND ac.status = "
        f"'{AppliedCoupon.Status.ACTIVE.value}') "
        f"FROM {_q(Customer._meta.db_table)} c JOIN {_q(Subscription._meta.db_table)} s "
        f"ON s.{_q(Subscription._meta.get_field('customer').column)} = c.id "
        "WHERE s.id = %s FOR UPDATE OF c"
    )
    return sql, names


def _customer_lock(subscription_id: int, skip_locked: bool) -> tuple[Customer, bool, TaxRates, bool] | None:
    """``(customer, has_wallets, tax_rates, has_coupons)`` of the subscription's customer, locked ``FOR UPDATE``."""
    sql, names = _customer_sql()
    with prepared_cursor() as cursor:  # planned once per connection (core.prepared)
        cursor.execute(sql + " SKIP LOCKED" if skip_locked else sql, [subscription_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(names)
    return (
        _instance(Customer, names, row[:n]),
        row[n],
        tuple(zip(row[n + 1], row[n + 2], strict=True)),
        row[n + 3],
    )


@cache
def _subscription_sql() -> tuple[str, tuple[list[str], list[str], list[str], list[str]]]:
    s_cols, s_names = _columns(Subscription, "s")
    p_cols, p_names = _columns(Plan, "p")
    v_cols, v_names = _columns(PlanVersion, "v")
    pin_cols, pin_names = _columns(PlanVersion, "pin")
    sub_field = Subscription._meta.get_field
    version_table = _q(PlanVersion._meta.db_table)
    sql = (
        f"SELECT {', '.join(s_cols + p_cols + v_cols + pin_cols)}, "
        f"(SELECT nv.id FROM {version_table} nv WHERE nv.{_q(PlanVersion._meta.get_field('plan').column)} = p.id "
        "AND nv.status = %s AND nv.effective_from <= s.current_period_end "
        "ORDER BY nv.effective_from DESC, nv.number DESC LIMIT 1) "
        f"FROM {_q(Subscription._meta.db_table)} s "
        f"JOIN {_q(Plan._meta.db_table)} p ON p.id = s.{_q(sub_field('plan').column)} "
        f"LEFT JOIN {version_table} v ON v.id = s.{_q(sub_field('plan_version').column)} "
        f"LEFT JOIN {version_table} pin ON pin.id = s.{_q(sub_field('pinned_version').column)} "
        "WHERE s.id = %s FOR UPDATE OF s"
    )
    return sql, (s_names, p_names, v_names, pin_names)


def _subscription_lock(subscription_id: int) -> tuple[Subscription, int | None] | None:
    """The subscription locked ``FOR UPDATE`` with its plan and versions, and the next version's id."""
    sql, (s_names, p_names, v_names, pin_names) = _subscription_sql()
    with prepared_cursor() as cursor:
        cursor.execute(sql, [PlanVersion.Status.PUBLISHED.value, subscription_id])
        row = cursor.fetchone()
    if row is None:
        return None
    i = 0
    parts = []
    for model, names in ((Subscription, s_names), (Plan, p_names), (PlanVersion, v_names), (PlanVersion, pin_names)):
        parts.append(_instance(model, names, row[i : i + len(names)]))
        i += len(names)
    subscription, plan, version, pinned = parts
    subscription.plan = plan
    if version is not None:
        version.plan = plan
    subscription.plan_version = version
    subscription.pinned_version = pinned
    return subscription, row[i]


def boundary_lock(
    *,
    subscription_id: int,
    skip_locked: bool = False,
    usage: UsageBatch | None = None,
    sheets: PriceSheets = NO_SHEETS,
) -> tuple[Subscription, BoundaryContext] | None:
    """Lock the subscription's customer, then the subscription, ``FOR UPDATE``; return the subscription (its
    ``customer`` the locked row) and the context of its due boundary. Call inside a transaction.

    ``None`` when the subscription does not exist, or, with ``skip_locked``, when another transaction holds
    the customer's lock (``SKIP LOCKED``: no wait). ``usage``/``sheets``: what the caller read beforehand,
    carried in the context. The caller re-checks the subscription's state (the row may have moved on).
    """
    locked_customer = _customer_lock(subscription_id, skip_locked)
    if locked_customer is None:
        return None
    customer, has_wallets, tax_rates, has_coupons = locked_customer
    locked = _subscription_lock(subscription_id)
    if locked is None:
        return None
    subscription, next_version_id = locked
    subscription.customer = customer
    context = BoundaryContext(
        customer=customer,
        boundary_at=subscription.current_period_end,
        tax_rates=tax_rates,
        has_wallets=has_wallets,
        has_coupons=has_coupons,
        next_version=subscription.pinned_version if subscription.pinned_version_id else next_version_id,
        usage=usage,
        sheets=sheets,
    )
    return subscription, context
