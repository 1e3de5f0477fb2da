"""Writes each existing invoice's reason with the rule draft recalculation used before the reason was stored.

* a credit-purchase invoice: ``credit_purchase``; any other invoice without a subscription: ``one_off``
  (its lines were kept as they are on recalculation);
* a subscription invoice whose boundary is its period's start: ``start``;
* one whose period ends before the end of the schedule period it belongs to (cut short by an immediate
  cancellation): ``cancel``;
* every other subscription invoice: ``boundary`` (set by ``0004_add_invoice_reason``).

Reversing it does nothing (reversing ``0002`` drops the column).
"""

from django.db import migrations
from django.db.models import F

from customers import periods

BATCH = 2000


def backfill(apps, schema_editor):
    Invoice = apps.get_model("invoicing", "Invoice")
    Invoice.objects.filter(kind="credit_purchase").update(reason="credit_purchase")
    Invoice.objects.filter(subscription__isnull=True).exclude(kind="credit_purchase").update(reason="one_off")
    subscription_invoices = Invoice.objects.filter(subscription__isnull=False).exclude(kind="credit_purchase")
    subscription_invoices.filter(billing_boundary_at=F("period_start")).update(reason="start")
    candidates = (
        subscription_invoices.exclude(billing_boundary_at=F("period_start"))
        .filter(period_start__isnull=False, period_end__isnull=False)
        .values_list("id", "period_start", "period_end", "subscription__billing", "subscription__start_at",
                     "subscription__plan__interval")
        .order_by("id")
    )
    cancels = []
    for pk, start, end, billing, anchor, interval in candidates.iterator(chunk_size=BATCH):
        if end != periods.period_containing(billing, anchor, interval, start).end:
            cancels.append(pk)
    for i in range(0, len(cancels), BATCH):
        Invoice.objects.filter(pk__in=cancels[i : i + BATCH]).update(reason="cancel")


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0001_initial"),
        ("customers", "0001_initial"),
        ("invoicing", "0004_add_invoice_reason"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
