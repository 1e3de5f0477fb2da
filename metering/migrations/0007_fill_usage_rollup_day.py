"""Fill the daily rollup from the hourly one, which holds every event up to each meter's watermark: the sums
of a day's hours are the day's values, so reads that use the daily rows stay exact from the start."""

from django.db import migrations

FORWARD = """
INSERT INTO metering_usagerollupday (meter_id, customer_external_id, day, event_count, value_sum, value_max)
SELECT meter_id, customer_external_id, date_trunc('day', hour, 'UTC'), SUM(event_count), SUM(value_sum),
       MAX(value_max)
FROM metering_usagerollup
GROUP BY meter_id, customer_external_id, date_trunc('day', hour, 'UTC')
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0006_add_usage_rollup_day"),
    ]

    operations = [migrations.RunSQL(FORWARD, "DELETE FROM metering_usagerollupday")]
