from django.db import migrations, models


class Migration(migrations.Migration):
    """Adds ``Invoice.reason``. Existing rows get ``boundary`` for a moment; ``0005_backfill_invoice_reason``
    then writes the reason each one was created for."""

    dependencies = [
        ('customers', '0001_initial'),
        ('invoicing', '0003_backfill_invoice_bill_to'),
    ]

    operations = [
        migrations.AddField(
            model_name='invoice',
            name='reason',
            field=models.CharField(choices=[('start', 'Subscription start'), ('boundary', 'Period end'), ('cancel', 'Canceled at once'), ('credit_purchase', 'Credit purchase'), ('change', 'Plan change'), ('trial_end', 'Trial end'), ('progressive', 'Progressive billing'), ('one_off', 'One-off')], default='boundary', help_text="Why it was issued: a subscription's start, a period's end, an immediate cancellation, a credit purchase...", max_length=16),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name='invoice',
            constraint=models.CheckConstraint(condition=models.Q(('reason__in', ['start', 'boundary', 'cancel', 'credit_purchase', 'change', 'trial_end', 'progressive', 'one_off'])), name='invoice_reason_known'),
        ),
    ]
