"""Invoices finalized before the bill-to copy existed get the customer's details as they are now (the best
record there is); drafts stay empty (they read the customer live). Reversing leaves the columns to 0002."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    Invoice = apps.get_model("invoicing", "Invoice")
    Customer = apps.get_model("customers", "Customer")
    customer = Customer.objects.filter(pk=OuterRef("customer_id"))
    Invoice.objects.exclude(status="draft").filter(bill_to_external_id="").update(
        bill_to_name=Subquery(customer.values("name")[:1]),
        bill_to_email=Subquery(customer.values("email")[:1]),
        bill_to_external_id=Subquery(customer.values("external_id")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0002_add_invoice_bill_to_snapshot"),
        ("customers", "0001_initial"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
