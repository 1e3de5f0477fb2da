"""The customer 360 panel on the customer's admin page: one screen to answer a customer's questions.

Admin is the outer shell, so this module may read every app: subscriptions and current periods, usage so
far against entitlements (bars), wallets with their real-time balance, invoices, payments, credit notes and
the upcoming invoice preview. Each block is a bounded number of queries, whatever the customer's history.
Invoices, payments, credit notes, amounts due and the preview are read only for users who may view invoices
(``invoicing=True``): Support sees subscriptions, usage and wallets.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from core.instants import zone_note
from core.money import format_decimal, format_money
from customers.models import Customer, Subscription
from customers.overrides import subscription_override_lines

RECENT = 12


def _bar(usage: Decimal | None, limit: Decimal | None) -> int | None:
    if usage is None or limit is None:
        return None
    if limit <= 0:
        return 100
    return int(min(usage / limit, Decimal(1)) * 100)


def _coupon_remaining(applied, amount: Decimal | None) -> str:
    """What an applied coupon still gives: ``$40.00 left``, ``2 invoices left``, ``unlimited``."""
    if amount is not None:
        return f"{format_money(amount, applied.coupon.currency)} left"
    if applied.remaining_periods is not None:
        n = applied.remaining_periods
        return f"{n} invoice{'s' if n != 1 else ''} left"
    return "unlimited" if applied.status == "active" else "—"


def customer_overview(*, customer: Customer, now: datetime, invoicing: bool = True) -> dict:
    from customers.entitlements import entitlement_list
    from invoicing.models import CreditNote, Invoice, Payment
    from invoicing.selectors import (
        applied_coupon_list,
        applied_coupon_remaining_amount,
        customer_pending_payable,
        upcoming_invoice_preview,
    )
    from wallets.models import Wallet
    from wallets.selectors import customer_real_time_balances

    subscriptions = list(
        Subscription.objects.filter(customer=customer)
        .select_related("plan", "plan_version", "scheduled_plan")
        .order_by("status", "-current_period_end")
    )
    # Negotiated prices, read only for the subscriptions that have some (most have none: no query).
    overrides = [
        {"subscription": s, "lines": subscription_override_lines(s)}
        for s in subscriptions
        if s.price_overrides or s.pending_price_overrides is not None
    ]
    entitlements = []
    for state in entitlement_list(customer=customer, now=now):
        entitlements.append(
            {
                "feature": state.feature,
                "type": state.type,
                "enabled": state.enabled,
                "value": state.value,
                "usage": format_decimal(state.usage) if state.usage is not None else None,
                "limit": format_decimal(state.limit) if state.limit is not None else "unlimited",
                "remaining": format_decimal(state.remaining) if state.remaining is not None else None,
                "soft": state.soft,
                "allowed": state.allowed,
                "bar": _bar(state.usage, state.limit),
                "window_start": state.window_start,
                "window_end": state.window_end,
            }
        )

    wallets = list(Wallet.objects.filter(customer=customer).order_by("created_at", "id"))
    real_time: dict[int, Decimal] = {}
    for currency in sorted({w.currency for w in wallets if w.status == Wallet.Status.ACTIVE}):
        pending = customer_pending_payable(customer=customer, currency=currency, now=now)
        real_time.update(customer_real_time_balances(customer=customer, currency=currency, pending=pending))
    wallet_rows = [
        {
            "wallet": w,
            "balance": format_decimal(w.balance),
            "real_time": format_decimal(real_time.get(w.pk, w.balance)),
            "value": format_money(w.balance * w.conversion_rate, w.currency),
            "rate": format_money(w.conversion_rate, w.currency),
            "below": w.low_balance_threshold is not None and w.balance < w.low_balance_threshold,
        }
        for w in wallets
    ]

    alert_rows = customer_alerts(customer=customer)
    if not invoicing:
        return {
            "now": now,
            "zone": zone_note(customer.timezone),
            "subscriptions": subscriptions,
            "overrides": overrides,
            "entitlements": entitlements,
            "wallets": wallet_rows,
            "alerts": alert_rows,
            "invoicing": False,
        }

    invoices = list(Invoice.objects.filter(customer=customer).order_by("-created_at", "-id")[:RECENT])
    payments = list(
        Payment.objects.filter(invoice__customer=customer)
        .select_related("invoice")
        .order_by("-paid_at", "-id")[:RECENT]
    )
    credit_notes = list(
        CreditNote.objects.filter(invoice__customer=customer).select_related("invoice").order_by("-created_at")[:RECENT]
    )
    open_due = (
        Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALIZED)
        .values("currency")
        .annotate(due=Sum("amount_due"))
        .order_by("currency")
    )

    preview = None
    if any(s.status == Subscription.Status.ACTIVE for s in subscriptions):
        up = upcoming_invoice_preview(customer=customer, now=now)
        preview = {
            "period_start": up.period_start,
            "period_end": up.period_end,
            "lines": [
                {
                    "description": line.description,
                    "kind": line.kind,
                    "amount": format_money(line.amount, up.currency),
                }
                for line in up.lines
            ],
            "subtotal": format_money(up.subtotal, up.currency),
            "discount": format_money(-up.discount, up.currency) if up.discount else None,
            "progressive_credit": format_money(up.progressive_billing_credit, up.currency)
            if up.progressive_billing_credit
            else None,
            "tax": format_money(up.tax, up.currency),
            "total": format_money(up.total, up.currency),
        }

    return {
        "now": now,
        "invoicing": True,
        "zone": zone_note(customer.timezone),
        "subscriptions": subscriptions,
        "overrides": overrides,
        "entitlements": entitlements,
        "wallets": wallet_rows,
        "alerts": alert_rows,
        "invoices": [
            {
                "invoice": inv,
                "total": format_money(inv.total, inv.currency),
                "due": format_money(inv.amount_due, inv.currency),
            }
            for inv in invoices
        ],
        "payments": [{"payment": p, "amount": format_money(p.amount, p.currency)} for p in payments],
        "credit_notes": [{"note": n, "amount": format_money(n.amount, n.currency)} for n in credit_notes],
        "open_due": [format_money(row["due"], row["currency"]) for row in open_due],
        "coupons": [
            {"applied": a, "remaining": _coupon_remaining(a, applied_coupon_remaining_amount(a))}
            for a in applied_coupon_list(customer=customer)[:RECENT]
        ],
        "preview": preview,
        "progressive": _progressive_rows(subscriptions, now),
    }


def _progressive_rows(subscriptions: list[Subscription], now: datetime) -> list[dict]:
    """Per active subscription with progressive billing thresholds: the current period's usage so far, what
    progressive invoices already billed of it, the lifetime usage amount and the next threshold."""
    from invoicing.services.progressive import progressive_state_read

    rows = []
    for sub in subscriptions:
        if sub.status != Subscription.Status.ACTIVE or not sub.plan_version.progressive_thresholds:
            continue
        state = progressive_state_read(subscription=sub, now=now)
        if state is None:
            continue
        currency = sub.customer.currency
        rows.append(
            {
                "subscription": sub,
                "usage_so_far": format_money(state.current_usage, currency),
                "billed_so_far": format_money(state.billed_this_period, currency),
                "lifetime": format_money(state.lifetime_usage, currency),
                "next_threshold": format_money(state.next_level, currency)
                if state.next_level is not None
                else "none (every threshold reached)",
            }
        )
    return rows


def customer_alerts(*, customer: Customer) -> list[dict]:
    """The customer's usage and spend alerts, each with its latest triggers (two queries)."""
    from webhooks.models import Alert
    from webhooks.selectors import customer_triggers_recent

    alerts = list(Alert.objects.filter(customer=customer).select_related("meter").order_by("id"))
    triggers = customer_triggers_recent(customer=customer, limit=RECENT)
    return [
        {
            "alert": alert,
            "watches": alert.meter.key if alert.meter_id else "spend",
            "thresholds": ", ".join(("every " if t["recurring"] else "") + t["value"] for t in alert.thresholds),
            "triggers": [
                {"level": format_decimal(t.threshold), "value": format_decimal(t.value), "at": t.triggered_at}
                for t in triggers
                if t.alert_id == alert.pk
            ],
        }
        for alert in alerts
    ]
