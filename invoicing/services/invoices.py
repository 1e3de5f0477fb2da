"""Invoice lifecycle: write lines and totals, finalize (gapless numbers), recalculate, void, payments, credit notes.

Every mutating service locks the invoice row (customer first when wallets may be touched), re-reads its
status after locking and raises ``Conflict`` (409) when the state forbids the change: a finalized invoice
never changes except for its payment state.

Rules chosen where the design is silent:

* A finalized invoice with nothing due (zero total, or fully covered by credits) is marked ``paid`` at once.
* ``amount_due = max(0, total - credits_applied - credit notes to the invoice - amount_paid)``.
* **Credit notes never create value** (docs/billing-rules.md): a note credits at most what remains creditable,
  ``total - credit notes already issued`` (400 ``amount``); ``refund_to: invoice`` at most what the invoice
  still owes, its ``amount_due`` (400 ``refund_to``: a paid invoice has nothing left to reduce); ``refund_to:
  wallet`` at most what was received for the invoice -- payments plus wallet credits applied -- less what
  earlier notes already refunded to the wallet (400 ``refund_to``: an unpaid invoice has nothing to refund), and
  only into an active wallet of the invoice's currency that the customer already has (400 ``refund_to``
  otherwise: a refund never creates a wallet, whose rate finance chooses).
  A credit purchase's note takes the credits it credits back from the purchased grant (``refund_to:
  invoice`` only; 409 when they were spent).
* Only a finalized invoice with no payment recorded and **no credit note** can be voided (409 otherwise:
  correct it with further credit notes instead). Wallet credits applied to it go back to their lots; voiding
  a credit purchase takes back the credits it granted, refused (409) once any of them was spent.
* Coupons (``coupons``): a subscription invoice takes its discount when it is created (a draft holds it);
  replacing a draft's lines (recalculation) gives back what the old computation took and takes it again; voiding
  gives back what the invoice took (a ``once`` fixed coupon's amount, a counted invoice), the document keeps
  showing it. One-off and credit-purchase invoices get no discount.
* Finalization copies the customer's name, email, external id and address onto the invoice (``bill_to_*``): the PDF and
  the admin show that copy for every non-draft, so editing the customer never changes an issued document.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from django.db import connection, transaction

from catalog.pricing import quantize_minor
from core.errors import Conflict, ValidationFailed
from core.instants import OUT_OF_RANGE, instant_in_range
from core.money import format_decimal, format_money
from core.outbox import record_event
from core.rows import row_insert_unless_conflict, rows_insert
from customers.models import Customer
from customers.periods import Period
from wallets.credits import credits_to_money
from wallets.models import CreditGrant, Wallet
from wallets.services import wallet_for_plan_credits, wallet_grant_create_locked

from ..models import CreditNote, Invoice, InvoiceLine, NumberSequence, Payment
from . import coupons
from . import credits as credits_seam
from .context import TaxRates, tax_rates_of
from .lines import REBUILT_REASONS, LineDraft, boundary_lines, lines_totals, tax_breakdown, version_for_period
from .numbering import numbered_save
from .period_close import period_close_terms_apply

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
                "UPDATE invoicing_numbersequence SET last_value = last_value + 1 WHERE name = %s RETURNING prefix, "
                "last_value",
                [name],
            )
            row = cursor.fetchone()
            if row is not None:
                return f"{row[0]}{row[1]:06d}"
            NumberSequence.objects.get_or_create(
                name=name, defaults={"prefix": SEQUENCE_PREFIXES.get(name, f"{name.upper()}-")}
            )
    raise RuntimeError(f"number sequence {name!r} unavailable")  # pragma: no cover


def _amount_due(invoice: Invoice) -> Decimal:
    due = invoice.total - invoice.credits_applied - invoice.credit_notes_total - invoice.amount_paid
    return max(due, ZERO)


def _lines_totals_set(invoice: Invoice, lines: list[LineDraft], tax_rates: TaxRates) -> None:
    totals = lines_totals(lines, tax_rates=tax_rates, currency=invoice.currency)
    invoice.subtotal = totals.subtotal
    invoice.discount = totals.discount
    invoice.progressive_billing_credit = totals.progressive_billing_credit
    invoice.tax = totals.tax
    invoice.total = totals.total
    invoice.tax_breakdown = tax_breakdown(totals)
    invoice.amount_due = _amount_due(invoice)


def _lines_insert(invoice: Invoice, lines: list[LineDraft]) -> None:
    rows_insert(  # one plain multi-row INSERT (``rows``): bulk_create's per-column arrays cost more to bind
        [
            InvoiceLine(
                invoice=invoice,
                position=i,
                kind=line.kind,
                description=line.description[:500],
                price=line.price,
                plan_version=line.plan_version,
                meter=line.meter,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                amount=line.amount,
                discount=line.discount,
                tax=line.tax,
                period_start=line.period_start,
                period_end=line.period_end,
                details=line.details,
                progressive_billing_credit=line.credit,
            )
            for i, line in enumerate(lines)
        ]
    )


def invoice_lines_write(*, invoice: Invoice, lines: list[LineDraft], now: datetime | None = None) -> None:
    """Replace a draft's lines and totals (lines -> subtotal -> coupon discount -> tax -> total). Call inside a
    transaction holding the customer lock: the coupons get back what the old lines took and discount the new ones."""
    had = []
    if invoice.kind == Invoice.Kind.SUBSCRIPTION:
        had = coupons.invoice_discounts_release(invoice=invoice, now=now or invoice.updated_at)
    discounts = coupons.invoice_discounts_plan(invoice=invoice, lines=lines, keep=had)
    _lines_totals_set(invoice, lines, tax_rates_of(invoice.customer))
    InvoiceLine.objects.filter(invoice=invoice).delete()
    _lines_insert(invoice, lines)
    invoice.save(
        update_fields=[
            "subtotal",
            "discount",
            "progressive_billing_credit",
            "tax",
            "total",
            "tax_breakdown",
            "amount_due",
            "updated_at",
        ]
    )
    coupons.invoice_discounts_record(invoice=invoice, plan=discounts)


def invoice_credits_settle(*, invoice: Invoice, now: datetime, save: bool = True, has_wallets: bool = True) -> None:
    """Call the wallets seam (apply, or hold for a draft) and recompute what is due. Call inside a transaction.

    The seam sets ``invoice.credits_applied`` on the instance passed in. ``has_wallets=False`` tells the seam
    the caller, holding the customer lock, found no wallet for the customer (nothing to look up).
    """
    credits_seam.invoice_credits_apply(
        invoice=invoice, now=now, top_up=credit_purchase_invoice_create, has_wallets=has_wallets
    )
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
    tax_rates: TaxRates,
    reason: Invoice.Reason,
    has_coupons: bool = True,
    kind: Invoice.Kind = Invoice.Kind.SUBSCRIPTION,
    progressive_crossing: tuple[Decimal, Decimal] | None = None,
) -> Invoice | None:
    """Insert a subscription invoice and its lines; ``None`` when this boundary is already billed.

    ``progressive_crossing``: a progressive invoice's ``(first, highest)`` threshold levels, whose
    ``invoice_unique_progressive_crossing`` refuses a second invoice for one crossing the same way.

    Call inside a transaction. ``tax_rates``: the customer's (``context.tax_rates_of``, or read along with its
    lock). ``reason``: why it is issued (start, boundary, cancel...), stored and used by recalculation.
    ``invoice_unique_subscription_boundary`` makes a second invoice for the boundary impossible; the insert
    says so itself (``ON CONFLICT DO NOTHING``), so no savepoint is needed. The customer's coupons discount it
    (``coupons``; ``has_coupons=False``: the caller, holding the customer lock, found none active).
    """
    first, highest = progressive_crossing or (None, None)
    invoice = Invoice(
        reason=reason,
        kind=kind,
        progressive_threshold=first,
        progressive_threshold_reached=highest,
        customer=customer,
        subscription=subscription,
        currency=customer.currency,
        billing_boundary_at=boundary_at,
        period_start=period.start,
        period_end=period.end,
        status=Invoice.Status.DRAFT,
        finalize_after=now + timedelta(days=customer.invoice_grace_days),
    )
    discounts = coupons.invoice_discounts_plan(invoice=invoice, lines=lines, has_coupons=has_coupons)
    _lines_totals_set(invoice, lines, tax_rates)
    if not _insert_unless_exists(invoice):
        return None
    _lines_insert(invoice, lines)
    coupons.invoice_discounts_record(invoice=invoice, plan=discounts)
    record_event("invoice.created", invoice)
    return invoice


def _insert_unless_exists(invoice: Invoice) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of a new invoice; False when a unique constraint
    already holds its place (the boundary was billed). One statement where ``save()`` in a savepoint takes
    three; its text is built once (``core.rows``), where the ORM's insert compiler built it for every invoice."""
    return row_insert_unless_conflict(invoice)


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
    """Second half of finalization: number, issue and due dates, the bill-to copy; nothing due -> paid. Saves it."""
    customer = invoice.customer
    invoice.bill_to_name = customer.name
    invoice.bill_to_email = customer.email
    invoice.bill_to_external_id = customer.external_id
    invoice.bill_to_address_line1 = customer.address_line1
    invoice.bill_to_address_line2 = customer.address_line2
    invoice.bill_to_city = customer.address_city
    invoice.bill_to_postal_code = customer.address_postal_code
    invoice.bill_to_country = customer.address_country
    invoice.bill_to_timezone = customer.timezone or "UTC"  # the zone its dates are shown in, fixed once issued
    invoice.issued_at = now
    invoice.finalized_at = now
    invoice.due_at = now + timedelta(days=invoice.customer.net_payment_terms)
    invoice.finalize_after = None
    invoice.amount_due = _amount_due(invoice)
    if invoice.amount_due == 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = now
    # The number taken and the row saved in one statement (``numbering``): the sequence is locked one round trip less.
    numbered_save(invoice, sequence="invoice", fields=FINALIZE_FIELDS, prefix=SEQUENCE_PREFIXES["invoice"])
    record_event("invoice.finalized", invoice)
    if invoice.status == Invoice.Status.PAID:
        record_event("invoice.paid", invoice)
    return invoice


# What finalization changes (with ``invoice_finalize_prepare``'s status and credits): the rest of the row was
# written by whoever created or last recalculated the draft, under the same invoice lock.
FINALIZE_FIELDS = [
    "number",
    "status",
    "issued_at",
    "finalized_at",
    "due_at",
    "finalize_after",
    "credits_applied",
    "amount_due",
    "paid_at",
    "bill_to_name",
    "bill_to_email",
    "bill_to_external_id",
    "bill_to_address_line1",
    "bill_to_address_line2",
    "bill_to_city",
    "bill_to_postal_code",
    "bill_to_country",
    "bill_to_timezone",
    "updated_at",
]


@transaction.atomic(savepoint=False)
def invoice_finalize_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Finalize a draft already locked by the caller: number, issue and due dates, credits applied.

    Call inside a transaction, holding the invoice row FOR UPDATE. A finalized invoice with nothing
    due becomes ``paid``.
    """
    invoice_finalize_prepare(invoice=invoice, now=now)
    return invoice_finalize_number(invoice=invoice, now=now)


def invoice_finalize_or_hold(*, invoice: Invoice, now: datetime, has_wallets: bool = True) -> bool:
    """A new subscription invoice: its customer's grace 0 finalizes it now (credits applied; the number is
    the caller's :func:`invoice_finalize_number` at the end of the transaction), else credits are held for the
    draft. Returns whether the invoice needs its number. Call inside a transaction.

    ``has_wallets=False``: the (locked) customer has no wallet, so no credits are looked for."""
    if invoice.customer.invoice_grace_days == 0:
        invoice_finalize_prepare(invoice=invoice, now=now, has_wallets=has_wallets)
        return True
    invoice_credits_settle(invoice=invoice, now=now, has_wallets=has_wallets)
    return False


def credit_purchase_invoice_create(*, wallet: Wallet, grant: CreditGrant, now: datetime) -> Invoice:
    """The purchase invoice of an auto top-up: one ``credit_purchase`` line, credits x conversion rate, untaxed.

    Finalized at once (``invoice_finalize_locked``: numbered, and paid when nothing is due). Call inside a
    transaction. It is the ``top_up`` passed to the credits seam: wallets call it when they buy the credits, and
    finalizing it comes back to the seam, so the seam receives it instead of importing this module.
    """
    amount = quantize_minor(credits_to_money(Decimal(grant.credits), Decimal(wallet.conversion_rate)), wallet.currency)
    invoice = Invoice.objects.create(
        kind=Invoice.Kind.CREDIT_PURCHASE,
        customer_id=wallet.customer_id,
        currency=wallet.currency,
        status=Invoice.Status.DRAFT,
        finalize_after=now,
        subtotal=amount,
        tax=Decimal(0),
        total=amount,
        amount_due=amount,
        reason=Invoice.Reason.CREDIT_PURCHASE,
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=0,
        kind=InvoiceLine.Kind.CREDIT_PURCHASE,
        description=(
            f"{format_decimal(grant.credits)} credits at {format_decimal(wallet.conversion_rate)} {wallet.currency} "
            f'per credit (automatic top-up of wallet "{wallet.name}")'
        ),
        quantity=grant.credits,
        unit_amount=wallet.conversion_rate,
        amount=amount,
        details={
            "wallet": str(wallet.pk),
            "grant": str(grant.pk),
            "credits": str(grant.credits),
            "conversion_rate": str(wallet.conversion_rate),
            "reason": "auto top-up below the low-balance threshold",
        },
    )
    record_event("invoice.created", invoice)
    return invoice_finalize_locked(invoice=invoice, now=now)


def _lock(invoice_id: int, *, customer: bool = False) -> Invoice:
    """Lock the invoice (after its customer, when asked: the customer is always locked first, then the invoice,
    then wallets and lots)."""
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
    """The lines an invoice would have if built now from events (same code as the boundary), by its reason.

    A subscription's start, period end or immediate cancellation is rebuilt from the subscription's prices
    and events; any other invoice (a credit purchase, a one-off) keeps its lines as they are.
    """
    if invoice.reason not in REBUILT_REASONS:
        return [
            LineDraft(
                kind=line.kind,
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                price=line.price,
                plan_version=line.plan_version,
                meter=line.meter,
                period_start=line.period_start,
                period_end=line.period_end,
                details=line.details,
                credit=line.progressive_billing_credit,
            )
            for line in invoice.lines.select_related("price", "plan_version", "meter")
        ]
    lines = boundary_lines(subscription=invoice.subscription, invoice=invoice)
    if invoice.reason == Invoice.Reason.START:
        return lines
    period = Period(invoice.period_start, invoice.period_end)
    return period_close_terms_apply(
        lines=lines,
        subscription=invoice.subscription,
        period=period,
        version=version_for_period(invoice.subscription, period),
        currency=invoice.currency,
        exclude_invoice_id=invoice.pk,
    )


@transaction.atomic(savepoint=False)
def invoice_recalculate_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Rebuild a locked draft from events: release held credits, rebuild lines, re-apply. Call inside a transaction."""
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only drafts can be recalculated.")
    credits_seam.invoice_credits_release(invoice=invoice, now=now)
    invoice.refresh_from_db(fields=["credits_applied"])
    lines = invoice_rebuild_lines(invoice=invoice)
    invoice_lines_write(invoice=invoice, lines=lines, now=now)
    invoice_credits_settle(invoice=invoice, now=now)
    return invoice


@transaction.atomic(durable=True)
def invoice_recalculate(*, invoice: Invoice, now: datetime) -> Invoice:
    """Recalculate a draft from events again (any number of times). 409 for anything but a draft."""
    locked = _lock(invoice.pk, customer=True)
    return invoice_recalculate_locked(invoice=locked, now=now)


def _void_refusal(invoice: Invoice) -> str | None:
    """Why the invoice cannot be voided, or None: it must be finalized (or settled by credits alone), with no
    payment recorded and no credit note (a note already gave part of it back: voiding would give it twice)."""
    if invoice.status not in (Invoice.Status.FINALIZED, Invoice.Status.PAID) or invoice.amount_paid != 0:
        return (
            f"Invoice {invoice} is {invoice.status} with {format_money(invoice.amount_paid, invoice.currency)} paid; "
            "only finalized, unpaid invoices can be voided."
        )
    if invoice.credit_notes.exists():
        return f"Invoice {invoice} has credit notes; correct it with further credit notes instead of voiding it."
    return None


@transaction.atomic(savepoint=False)
def invoice_void_locked(*, invoice: Invoice, now: datetime) -> Invoice:
    """Void a locked finalized invoice no money was paid on and no credit note was issued for. Call inside a
    transaction.

    "Unpaid" means no payment was recorded: an invoice settled entirely by wallet credits (status paid,
    ``amount_paid`` 0) may be voided too, and its credits go back to the wallet (``invoice_void``).
    """
    refusal = _void_refusal(invoice)
    if refusal:
        raise Conflict(refusal)
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = now
    invoice.amount_due = ZERO
    invoice.save(update_fields=["status", "voided_at", "amount_due", "updated_at"])
    record_event("invoice.voided", invoice)
    return invoice


@transaction.atomic(durable=True)
def invoice_void(*, invoice: Invoice, now: datetime) -> Invoice:
    """Void a finalized invoice with nothing paid and no credit note yet; else 409.

    Wallet credits applied to it go back to the lots they came from (``adjustment`` rows; a lot that has
    expired meanwhile expires again at the next run). Voiding a credit purchase takes back the credits it
    granted (a ``void`` row), refused (409) if any of them was spent. Locks in the usual order (customer ->
    wallets -> lots -> invoice); the state is checked before and again after the invoice lock, and a refused
    void rolls everything back.
    """
    current = _lock_customer_then_read(invoice.pk)
    refusal = _void_refusal(current)
    if refusal:
        raise Conflict(refusal)
    if current.kind == Invoice.Kind.CREDIT_PURCHASE:
        grant, _rate = credits_seam.credit_purchase_grant(current)
        if grant is not None:
            credits_seam.credit_purchase_revoke(
                invoice=current,
                credits=grant.credits,
                key=f"invoice:{current.pk}:void",
                reason=f"Taken back: purchase invoice {current.number} voided",
            )
    elif current.credits_applied > 0:
        credits_seam.invoice_credits_release(
            invoice=current, now=now, reason=f"Given back: invoice {current.number} voided"
        )
    if current.kind == Invoice.Kind.SUBSCRIPTION:
        coupons.invoice_discounts_release(invoice=current, now=now, voided=True)
    return invoice_void_locked(invoice=_lock(invoice.pk), now=now)


def _lock_customer_then_read(invoice_id: int) -> Invoice:
    """Lock the invoice's customer (first in the lock order) and read the invoice, not locked yet."""
    customer_id = Invoice.objects.values_list("customer_id", flat=True).get(pk=invoice_id)
    Customer.objects.select_for_update().filter(pk=customer_id).first()
    return Invoice.objects.select_related("customer").get(pk=invoice_id)


def _positive_amount(amount, currency: str) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValidationFailed("Must be a positive amount.", field="amount")
    if quantize_minor(amount, currency) != amount:
        raise ValidationFailed(f"Must be in whole minor units of {currency}.", field="amount")
    return amount


@transaction.atomic(savepoint=False)
def payment_record_locked(
    *, invoice: Invoice, amount: Decimal, reference: str, now: datetime, paid_at: datetime | None = None
) -> Payment:
    """Record an offline payment on a locked invoice. Call inside a transaction.

    ``paid_at`` is when the money was received (default ``now``): never after ``now`` (400 ``paid_at``). An
    invoice paid in full is ``paid`` as of its latest payment's date.
    """
    if invoice.status != Invoice.Status.FINALIZED:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; payments are recorded on finalized invoices only.")
    amount = _positive_amount(amount, invoice.currency)
    if amount > invoice.amount_due:
        raise ValidationFailed(
            f"More than the amount due ({format_money(invoice.amount_due, invoice.currency)}).", field="amount"
        )
    paid_at = paid_at or now
    if not instant_in_range(paid_at):
        raise ValidationFailed(OUT_OF_RANGE, field="paid_at")
    if paid_at > now:
        raise ValidationFailed("Must not be in the future: record a payment once it is received.", field="paid_at")
    payment = Payment.objects.create(
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        method=Payment.Method.OFFLINE,
        reference=reference or "",
        paid_at=paid_at,
    )
    invoice.amount_paid += amount
    invoice.amount_due = _amount_due(invoice)
    if invoice.amount_due == 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = max(p.paid_at for p in invoice.payments.all())
    invoice.save(update_fields=["amount_paid", "amount_due", "status", "paid_at", "updated_at"])
    if invoice.status == Invoice.Status.PAID:
        record_event("invoice.paid", invoice)
    return payment


@transaction.atomic(durable=True)
def payment_record(
    *, invoice: Invoice, amount: Decimal, reference: str = "", now: datetime, paid_at: datetime | None = None
) -> Payment:
    """Offline payment; partial allowed; more than due -> 400 ``amount``; a future ``paid_at`` -> 400 ``paid_at``;
    drafts, void, paid -> 409."""
    return payment_record_locked(
        invoice=_lock(invoice.pk), amount=amount, reference=reference, now=now, paid_at=paid_at
    )


def _notes_total(invoice: Invoice, refund_to: str | None = None) -> Decimal:
    notes = invoice.credit_notes.all()
    return sum((cn.amount for cn in notes if refund_to is None or cn.refund_to == refund_to), ZERO)


def creditable_amount(invoice: Invoice) -> Decimal:
    """What may still be credited: total - credit notes already issued (never below 0)."""
    return max(invoice.total - _notes_total(invoice), ZERO)


def refundable_to_wallet(invoice: Invoice) -> Decimal:
    """What a note may still refund to the wallet: what was received for the invoice (payments and wallet
    credits applied) less what earlier notes refunded to the wallet (never below 0)."""
    received = invoice.amount_paid + invoice.credits_applied
    return max(received - _notes_total(invoice, CreditNote.RefundTo.WALLET), ZERO)


@transaction.atomic(savepoint=False)
def credit_note_issue_locked(
    *, invoice: Invoice, amount: Decimal, reason: str, refund_to: str, now: datetime
) -> CreditNote:
    """Issue a credit note on a locked finalized (or paid) invoice. Call inside a transaction, holding the
    customer lock too (a note may touch the customer's wallets).

    Caps (the module docstring): ``amount`` at most what remains creditable (400 ``amount``); ``refund_to:
    invoice`` at most what the invoice still owes, ``wallet`` at most what was received for it less earlier
    wallet refunds (400 ``refund_to``). A credit purchase is credited by taking the credits back (``invoice``
    only).
    """
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
            f"More than the invoice can still be credited ({format_money(remaining, invoice.currency)}).",
            field="amount",
        )
    purchase = invoice.kind == Invoice.Kind.CREDIT_PURCHASE
    if refund_to == CreditNote.RefundTo.WALLET and purchase:
        raise ValidationFailed(
            "A credit purchase is credited by taking its credits back: use refund_to 'invoice' for what it still owes.",
            field="refund_to",
        )
    if refund_to == CreditNote.RefundTo.INVOICE and amount > invoice.amount_due:
        raise ValidationFailed(
            f"More than the invoice still owes ({format_money(invoice.amount_due, invoice.currency)}); "
            "refund what was received with refund_to 'wallet'.",
            field="refund_to",
        )
    if refund_to == CreditNote.RefundTo.WALLET and amount > (refundable := refundable_to_wallet(invoice)):
        raise ValidationFailed(
            "More than was received for the invoice and not yet refunded "
            f"({format_money(refundable, invoice.currency)}): "
            "only payments and credits applied can be refunded to the wallet.",
            field="refund_to",
        )
    if refund_to == CreditNote.RefundTo.WALLET and _refund_wallet(invoice) is None:
        raise ValidationFailed(
            f"{invoice.customer.name} has no active {invoice.currency} wallet to refund to: create one first "
            "(POST /wallets, or Wallets in the admin, choosing its conversion rate), then issue the note again.",
            field="refund_to",
        )
    note = CreditNote.objects.create(
        number=number_next(name="credit_note"),
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        reason=reason.strip(),
        refund_to=refund_to,
    )
    if purchase:
        _, rate = credits_seam.credit_purchase_grant(invoice)
        credits_seam.credit_purchase_revoke(
            invoice=invoice,
            credits=_money_to_credits(amount, rate, ROUND_UP),
            key=f"credit-note:{note.number}",
            reason=f"Taken back: credit note {note.number}",
        )
    if refund_to == CreditNote.RefundTo.WALLET:
        _refund_to_wallet(note=note, now=now)
    if refund_to == CreditNote.RefundTo.INVOICE:
        invoice.credit_notes_total += amount
        invoice.amount_due = _amount_due(invoice)
        paid_now = invoice.status == Invoice.Status.FINALIZED and invoice.amount_due == 0
        if paid_now:
            invoice.status = Invoice.Status.PAID
            invoice.paid_at = now
        invoice.save(update_fields=["credit_notes_total", "amount_due", "status", "paid_at", "updated_at"])
        if paid_now:
            record_event("invoice.paid", invoice)
    record_event("credit_note.created", note)
    return note


def _money_to_credits(amount: Decimal, rate: Decimal, rounding: str) -> Decimal:
    """``amount / rate`` credits at 12 decimal places, rounded as asked (never to the customer's advantage)."""
    rate = rate or Decimal(1)
    return (amount / rate).quantize(Decimal("0.000000000001"), rounding=rounding)


def _refund_wallet(invoice: Invoice):
    """The wallet a refund goes to: the customer's first active wallet in the invoice's currency, or ``None``.

    A refund never creates a wallet (unlike plan credits, API.md): its conversion rate decides what the money is
    worth in credits, so finance chooses it; the note is refused (400 ``refund_to``) until the wallet exists.
    """

    return wallet_for_plan_credits(customer=invoice.customer, currency=invoice.currency, create=False)


def _refund_to_wallet(*, note: CreditNote, now: datetime) -> None:
    """Grant the note's amount as ``adjustment`` credits to the customer's wallet in the invoice currency
    (:func:`_refund_wallet`, checked before the note was numbered).

    Money becomes credits at the wallet's conversion rate (credits = amount / rate, rounded down to 12 decimal
    places: the credits are never worth more than the money refunded). Call inside a transaction, holding the
    customer lock (the customer first, then the invoice, then wallets and lots).
    """
    wallet = _refund_wallet(note.invoice)
    credits = _money_to_credits(note.amount, wallet.conversion_rate, ROUND_DOWN)
    wallet_grant_create_locked(
        wallet=wallet,
        credits=credits,
        kind="adjustment",
        now=now,
        idempotency_key=f"credit-note:{note.number}",
        name=f"Credit note {note.number}",
        reference=f"credit_note:{note.pk}",
    )


@transaction.atomic(durable=True)
def credit_note_issue(*, invoice: Invoice, amount: Decimal, reason: str, refund_to: str, now: datetime) -> CreditNote:
    """Issue a numbered credit note (``CN-000001``) within the caps of :func:`credit_note_issue_locked` (400)."""
    locked = _lock(invoice.pk, customer=True)
    return credit_note_issue_locked(invoice=locked, amount=amount, reason=reason, refund_to=refund_to, now=now)
