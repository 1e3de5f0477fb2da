"""Every insert into the event table takes a shared advisory lock before its first id is drawn.

The usage rollup takes the same lock exclusively for an instant to read the highest committed event id: no
insert is in flight then, and every later insert draws higher ids, so the rollup can fold everything up to
that id at once instead of waiting minutes for in-flight inserts (docs/metering.md, "Rollup freshness").
A ``BEFORE ... FOR EACH STATEMENT`` trigger fires before any row (and its id) is made, for every writer:
the API, COPY, the ORM.
"""

from django.db import migrations

# metering.services.ROLLUP_FENCE_KEY
FORWARD = r"""
CREATE FUNCTION metering_event_rollup_fence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7305640117);
    RETURN NULL;
END
$$;
CREATE TRIGGER event_rollup_fence BEFORE INSERT ON metering_event
    FOR EACH STATEMENT EXECUTE FUNCTION metering_event_rollup_fence();
"""

BACKWARD = r"""
DROP TRIGGER event_rollup_fence ON metering_event;
DROP FUNCTION metering_event_rollup_fence();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0004_partition_events_by_month"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
