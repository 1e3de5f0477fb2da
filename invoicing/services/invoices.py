"""Invoice lifecycle: write lines and totals, finalize (gapless numbers), recalculate, void, payments, credit notes.

Every mutating service locks the invoice row (customer first when wallets may be touched), re-reads its
status after locking and raises ``Conflict`` (409) when the state forbids the change: a finalized invoice
never changes except for its payment state.

Rules chosen where the design is silent:

* A finalized invoice with nothing due (zero total, or fully covered by credits) is marked ``paid`` at once.
* ``amount_due = max(0, total - credits_applied - credit notes to the invoice - amount_paid)``.
* What remains creditable on an invoice is ``total - credits_applied - credit notes already issued``
  (payments do not reduce it: a paid invoice may be credited, to the wallet).
* Only an unpaid (``amount_paid == 0``) finalized invoice can be voided; wallet credits applied to it
  stay spent (voiding books nothing in the wallets).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models.constants import OnConflict

from catalog.pricing import quantize_minor
from core.errors import Conflict, ValidationFailed
from customers.models import Customer
from customers.periods import Period

from ..models import CreditNote, Invoice, InvoiceLine, NumberSequence, Payment
from . import credits as credits_seam
from .lines import LineDraft, lines_totals, tax_breakdown

SEQUENCE_PREFIXES = {"invoice": "INV-", "credit_note": "CN-"}
ZERO = Decimal("0")


def number_next(*, name: str) -> str:
    """The next number of a gapless sequence (``INV-000001``). Call inside a transaction.

    The sequence row is locked by the UPDATE until the caller's transaction ends, so concurrent
    finalizations queue on it and a rolled-back transaction gives its number back: no gaps, no duplicates.
    """
    with connection.cursor() as cursor:
        for _attempt in range(2):
            cursor.execute(
                "UPDATE invoicing_numbersequence SET last_value = last_value + 1 WHERE name = %s RETURNING prefix, last_value",
                [name],
            )
            row = cursor.fetchone()
            if row is not None:
                return f"{row[0]}{row[1]:06d}"
            NumberSequence.objects.get_or_create(name=name, defaults={"prefix": SEQUENCE_PREFIXES.get(name, f"{name.upper()}-")})
    raise RuntimeError(f"number sequence {name!r} unavailable")  # pragma: no cover


def _amount_due(invoice: Invoice) -> Decimal:
    due = invoice.total - invoice.credits_applied - invoice.credit_notes_total - invoice.amount_paid
    return max(due, ZERO)


def _lines_totals_set(invoice: Invoice, lines: list[LineDraft]) -> None:
    totals = lines_totals(lines, customer=invoice.customer, currency=invoice.currency)
    invoice.subtotal = totals.subtotal
    invoice.tax = totals.tax
    invoice.total = totals.total
    invoice.tax_breakdown = tax_breakdown(totals)
    invoice.amount_due = _amount_due(invoice)


def _lines_insert(invoice: Invoice, lines: list[LineDraft]) -> None:
    InvoiceLine.objects.bulk_create([
        InvoiceLine(
            invoice=invoice, position=i, kind=line.kind, description=line.description[:500], price=line.price,
            plan_version=line.plan_version, meter=line.meter, quantity=line.quantity, unit_amount=line.unit_amount,
            amount=line.amount, tax=line.tax, period_start=line.period_start, period_end=line.period_end,
            details=line.details,
        )
        for i, line in enumerate(lines)
    ])


def invoice_lines_write(*, invoice: Invoice, lines: list[LineDraft]) -> None:
    """Replace a draft's lines and totals (lines -> subtotal -> tax -> total). Call inside a transaction."""
    _lines_totals_set(invoice, lines)
    InvoiceLine.objects.filter(invoice=invoice).delete()
    _lines_insert(invoice, lines)
    invoice.save(update_fields=["subtotal", "tax", "total", "tax_breakdown", "amount_due", "updated_at"])


def invoice_credits_settle(*, invoice: Invoice, now: datetime, save: bool = True, has_wallets: bool = True) -> None:
    """Call the wallets seam (apply, or hold for a draft) and recompute what is due. Call inside a transaction.

    The seam sets ``invoice.credits_applied`` on the instance passed in. ``has_wallets=False`` tells the seam
    the caller, holding the customer lock, found no wallet for the customer (nothing to look up).
    """
    credits_seam.invoice_credits_apply(invoice=invoice, now=now, has_wallets=has_wallets)
    invoice.credits_applied = quantize_minor(invoice.credits_applied, invoice.currency)
    invoice.amount_due = _amount_due(invoice)
    if save:
        invoice.save(update_fields=["credits_applied", "amount_due", "updated_at"])


def invoice_create_for_period(
    *,
    customer: Customer,
    subscription,
    boundary_at: datetime,
    period: Period,
    lines: list[LineDraft],
    now: datetime,
) -> Invoice | None:
    """Insert a subscription invoice and its lines; ``None`` when this boundary is already billed.

    Call inside a transaction. ``invoice_unique_subscription_boundary`` makes a second invoice for the
    boundary impossible; the insert says so itself (``ON CONFLICT DO NOTHING``), so no savepoint is needed.
    """
    invoice = Invoice(
        customer=customer, subscription=subscription, currency=customer.currency, billing_boundary_at=boundary_at,
        period_start=period.start, period_end=period.end, status=Invoice.Status.DRAFT,
        finalize_after=now + timedelta(days=customer.invoice_grace_days),
    )
    _lines_totals_set(invoice, lines)
    if not _insert_unless_exists(invoice):
        return None
    _lines_insert(invoice, lines)
    return invoice


def _insert_unless_exists(invoice: Invoice) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of a new invoice; False when a unique constraint
    already holds its place (the boundary was billed). One statement where ``save()`` in a savepoint takes
    three; built by Django's insert compiler (``QuerySet._insert``, the call ``Model.save`` itself makes,
    with ``OnConflict.IGNORE`` as ``bulk_create(ignore_conflicts=True)`` passes it)."""
    meta = Invoice._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
    returning = meta.db_returning_fields
    rows = Invoice._base_manager._insert(
        [invoice], fields=fields, returning_fields=returning, using=connection.alias, on_conflict=OnConflict.IGNORE
    )
    if not rows or rows[0] is None:
        return False
    for value, field in zip(rows[0], returning, strict=True):
        setattr(invoice, field.attname, value)
    invoice._state.adding = False
    invoice._state.db = connection.alias
    return True


def invoice_finalize_prepare(*, invoice: Invoice, now: datetime, has_wallets: bool = True) -> None:
    """First half of finalization: the status becomes finalized and wallet credits are applied (not held).

    Call inside a transaction holding the invoice lock, then :func:`invoice_finalize_number` before commit.
    Split so that a boundary applies credits before rollover and expiry, yet takes its number (which
    locks the gapless sequence until commit) as late as possible in the transaction.
    """
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only drafts can be finalized.")
    invoice.status = Invoice.Status.FINALIZED
    invoice_credits_settle(invoice=invoice, now=now, save=False, has_wallets=has_wallets)


def invoice_finalize_number(*, invoice: Invoice, now: datetime) -> Invoice:
    """Second half of finalization: number, issue and due dates; nothing due -> paid. Saves the invoice."""
    invoice.number = number_next(name="invoice")
    invoice.issued_at = now
    invoice.finalized_at = now
    invoice.due_at = now + timedelta(days=invoice.customer.net_payment_terms)
    invoice.finalize_after = None
    invoice.amount_due = _amount_due(invoice)
    if invoice.amount_due == 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = now
    invoice.save(update_fields=FINALIZE_FIELDS)
    return invoice


# What finalization changes (with ``invoice_finalize_prepare``'s status and credits): the rest of the row was
# written by whoever created or last recalculated the draft, under the same invoice lock.
FINALIZE_FIELDS = [
    "number", "status", "issued_at", "finalized_at", "due_at", "finalize_after", "credits_applied", "amount_due",
    "paid_at", "updated_at",
]


@transaction.atomic(savepoint=False)
def invoice_finalize_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Finalize a draft already locked by the caller: number, issue and due dates, credits applied.

    Call inside a transaction, holding the invoice row FOR UPDATE. A finalized invoice with nothing
    due becomes ``paid``.
    """
    invoice_finalize_prepare(invoice=invoice, now=now)
    return invoice_finalize_number(invoice=invoice, now=now)


def _lock(invoice_id: int, *, customer: bool = False) -> Invoice:
    """Lock the invoice (after its customer, when asked: lock order customer -> wallets -> invoice)."""
    if customer:
        customer_id = Invoice.objects.values_list("customer_id", flat=True).get(pk=invoice_id)
        Customer.objects.select_for_update().filter(pk=customer_id).first()
    return Invoice.objects.select_for_update(of=("self",)).select_related("customer").get(pk=invoice_id)


@transaction.atomic(durable=True)
def invoice_finalize(*, invoice: Invoice, now: datetime) -> Invoice:
    """Finalize a draft (API, admin, runs). 409 when it is not a draft any more."""
    locked = _lock(invoice.pk, customer=True)
    return invoice_finalize_locked(invoice=locked, now=now)


def invoice_rebuild_lines(*, invoice: Invoice) -> list[LineDraft]:
    """The lines a subscription invoice would have if built now from events (same code as the boundary)."""
    from .boundary import boundary_lines

    subscription = invoice.subscription
    if subscription is None:
        # Not a period invoice (a purchase or a one-off): its lines are kept as they are.
        return [
            LineDraft(
                kind=line.kind, description=line.description, amount=line.amount, quantity=line.quantity,
                unit_amount=line.unit_amount, price=line.price, plan_version=line.plan_version, meter=line.meter,
                period_start=line.period_start, period_end=line.period_end, details=line.details,
            )
            for line in invoice.lines.select_related("price", "plan_version", "meter")
        ]
    return boundary_lines(subscription=subscription, invoice=invoice)


@transaction.atomic(savepoint=False)
def invoice_recalculate_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Rebuild a locked draft from events: release held credits, rebuild lines, re-apply. Call inside a transaction."""
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only drafts can be recalculated.")
    credits_seam.invoice_credits_release(invoice=invoice, now=now)
    invoice.refresh_from_db(fields=["credits_applied"])
    lines = invoice_rebuild_lines(invoice=invoice)
    invoice_lines_write(invoice=invoice, lines=lines)
    invoice_credits_settle(invoice=invoice, now=now)
    return invoice


@transaction.atomic(durable=True)
def invoice_recalculate(*, invoice: Invoice, now: datetime) -> Invoice:
    """Recalculate a draft from events again (any number of times). 409 for anything but a draft."""
    locked = _lock(invoice.pk, customer=True)
    return invoice_recalculate_locked(invoice=locked, now=now)


@transaction.atomic(savepoint=False)
def invoice_void_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Void a locked finalized invoice no money was paid on. Call inside a transaction.

    "Unpaid" means no payment was recorded: an invoice settled entirely by wallet credits (status paid,
    ``amount_paid`` 0) may be voided too, and its credits go back to the wallet (``invoice_void``).
    """
    voidable = invoice.status in (Invoice.Status.FINALIZED, Invoice.Status.PAID) and invoice.amount_paid == 0
    if not voidable:
        raise Conflict(
            f"Invoice {invoice} is {invoice.status} with {invoice.amount_paid} paid; only finalized, unpaid invoices can be voided."
        )
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = now
    invoice.amount_due = ZERO
    invoice.save(update_fields=["status", "voided_at", "amount_due", "updated_at"])
    return invoice


@transaction.atomic(durable=True)
def invoice_void(*, invoice: Invoice, now: datetime) -> Invoice:
    """Void a finalized invoice with nothing paid yet; else 409.

    Wallet credits applied to it go back to the lots they came from (``adjustment`` rows; a lot that has
    expired meanwhile expires again at the next run). The release takes the locks in the usual order
    (customer -> wallets -> lots -> invoice) before the state is re-checked; a refused void rolls it back.
    """
    current = Invoice.objects.only("pk", "number", "customer_id", "currency", "status", "credits_applied", "billing_boundary_at").get(pk=invoice.pk)
    if current.status in (Invoice.Status.FINALIZED, Invoice.Status.PAID) and current.credits_applied > 0:
        credits_seam.invoice_credits_release(
            invoice=current, now=now, reason=f"Given back: invoice {current.number} voided"
        )
    return invoice_void_locked(invoice=_lock(invoice.pk), now=now)


def _positive_amount(amount, currency: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationFailed("Must be a positive amount.", field="amount")
    if quantize_minor(amount, currency) != amount:
        raise ValidationFailed(f"Must be in whole minor units of {currency}.", field="amount")
    return amount


@transaction.atomic(savepoint=False)
def payment_record_locked(*, invoice: Invoice, amount: Decimal, reference: str, now: datetime) -> Payment:
    """Record an offline payment on a locked invoice. Call inside a transaction."""
    if invoice.status != Invoice.Status.FINALIZED:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; payments are recorded on finalized invoices only.")
    amount = _positive_amount(amount, invoice.currency)
    if amount > invoice.amount_due:
        raise ValidationFailed(f"More than the amount due ({invoice.amount_due} {invoice.currency}).", field="amount")
    payment = Payment.objects.create(
        invoice=invoice, amount=amount, currency=invoice.currency, method=Payment.Method.OFFLINE,
        reference=reference or "", paid_at=now,
    )
    invoice.amount_paid += amount
    invoice.amount_due = _amount_due(invoice)
    if invoice.amount_due == 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = now
    invoice.save(update_fields=["amount_paid", "amount_due", "status", "paid_at", "updated_at"])
    return payment


@transaction.atomic(durable=True)
def payment_record(*, invoice: Invoice, amount: Decimal, reference: str = "", now: datetime) -> Payment:
    """Offline payment; partial allowed; more than due -> 400 ``amount``; drafts, void, paid -> 409."""
    return payment_record_locked(invoice=_lock(invoice.pk), amount=amount, reference=reference, now=now)


def creditable_amount(invoice: Invoice) -> Decimal:
    """What may still be credited: total - credits applied - credit notes already issued (never below 0)."""
    issued = sum((cn.amount for cn in invoice.credit_notes.all()), ZERO)
    return max(invoice.total - invoice.credits_applied - issued, ZERO)


@transaction.atomic(savepoint=False)
def credit_note_issue_locked(
    *, invoice: Invoice, amount: Decimal, reason: str, refund_to: str, now: datetime
) -> CreditNote:
    """Issue a credit note on a locked finalized (or paid) invoice. Call inside a transaction."""
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID):
        raise Conflict(f"Invoice {invoice} is {invoice.status}; credit notes are issued on finalized invoices only.")
    if refund_to not in CreditNote.RefundTo.values:
        raise ValidationFailed(f"Unknown refund_to '{refund_to}'.", field="refund_to")
    if not (reason or "").strip():
        raise ValidationFailed("A reason is required.", field="reason")
    amount = _positive_amount(amount, invoice.currency)
    remaining = creditable_amount(invoice)
    if amount > remaining:
        raise ValidationFailed(
            f"More than the invoice can still be credited ({remaining} {invoice.currency}).", field="amount"
        )
    note = CreditNote.objects.create(
        number=number_next(name="credit_note"), invoice=invoice, amount=amount, currency=invoice.currency,
        reason=reason.strip(), refund_to=refund_to,
    )
    if refund_to == CreditNote.RefundTo.WALLET:
        _refund_to_wallet(note=note, now=now)
    if refund_to == CreditNote.RefundTo.INVOICE:
        invoice.credit_notes_total += amount
        invoice.amount_due = _amount_due(invoice)
        if invoice.status == Invoice.Status.FINALIZED and invoice.amount_due == 0:
            invoice.status = Invoice.Status.PAID
            invoice.paid_at = now
        invoice.save(update_fields=["credit_notes_total", "amount_due", "status", "paid_at", "updated_at"])
    return note


def _refund_to_wallet(*, note: CreditNote, now: datetime) -> None:
    """Grant the note's amount as ``adjustment`` credits to the customer's wallet in the invoice currency.

    Money becomes credits at the wallet's conversion rate (credits = amount / rate, 12 decimal places).
    Call inside a transaction, holding the customer lock (lock order customer -> wallets -> invoice).
    """
    from wallets.services import wallet_for_plan_credits, wallet_grant_create_locked

    invoice = note.invoice
    wallet = wallet_for_plan_credits(customer=invoice.customer, currency=invoice.currency)
    rate = wallet.conversion_rate or Decimal(1)
    credits = (note.amount / rate).quantize(Decimal("0.000000000001"), rounding=ROUND_HALF_UP)
    wallet_grant_create_locked(
        wallet=wallet, credits=credits, kind="adjustment", now=now, idempotency_key=f"credit-note:{note.number}",
        name=f"Credit note {note.number}", reference=f"credit_note:{note.pk}",
    )


@transaction.atomic(durable=True)
def credit_note_issue(*, invoice: Invoice, amount: Decimal, reason: str, refund_to: str, now: datetime) -> CreditNote:
    """Issue a numbered credit note (``CN-000001``), capped at what remains creditable (else 400 ``amount``)."""
    locked = _lock(invoice.pk, customer=refund_to == CreditNote.RefundTo.WALLET)
    return credit_note_issue_locked(invoice=locked, amount=amount, reason=reason, refund_to=refund_to, now=now)
