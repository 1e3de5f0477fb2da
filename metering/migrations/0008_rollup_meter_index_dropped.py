# Drops the rollups' own meter index: the unique constraint (meter, customer, hour|day) starts with the meter.
# Only the index is dropped (the foreign key stays as it is: AlterField would drop and re-validate it, a scan of
# the whole rollup under a lock that stops folding).

import django.db.models.deletion
from django.db import migrations, models


def _field():
    return models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="metering.meter"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0007_fill_usage_rollup_day"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "metering_usagerollup_meter_id_58bc45d2"',
                    'CREATE INDEX IF NOT EXISTS "metering_usagerollup_meter_id_58bc45d2" '
                    'ON "metering_usagerollup" ("meter_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "metering_usagerollupday_meter_id_ea515d13"',
                    'CREATE INDEX IF NOT EXISTS "metering_usagerollupday_meter_id_ea515d13" '
                    'ON "metering_usagerollupday" ("meter_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(model_name="usagerollup", name="meter", field=_field()),
                migrations.AlterField(model_name="usagerollupday", name="meter", field=_field()),
            ],
        ),
    ]
