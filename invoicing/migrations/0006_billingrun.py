from django.db import migrations, models

from core.migration_utils import adopt_or_create


class Migration(migrations.Migration):
    """Billing runs, formerly in the ``billing_project`` app: the table is adopted when an installation has it,
    created otherwise (``core.migration_utils``)."""

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("invoicing", "0005_backfill_invoice_reason"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="BillingRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("as_of", models.DateTimeField(help_text="The instant the run billed up to (UTC).")),
                        ("customer_external_id", models.CharField(blank=True, max_length=255)),
                        ("trigger", models.CharField(default="manual", max_length=20)),
                        ("status", models.CharField(choices=[("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Finished with failures")], default="running", max_length=12)),
                        ("started_at", models.DateTimeField(auto_now_add=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("failures", models.JSONField(blank=True, default=list)),
                        ("failed_subscriptions", models.JSONField(blank=True, default=list, help_text='Subscriptions whose billing failed: [{"subscription", "customer", "boundary", "error"}].')),
                        ("summary", models.TextField(blank=True)),
                    ],
                    options={"ordering": ["-started_at"]},
                ),
            ],
        ),
        migrations.RunPython(*adopt_or_create("invoicing", "BillingRun", "billing_project", "billing_project_billingrun")),
    ]
