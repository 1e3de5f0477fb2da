"""Events move to a table partitioned by month of ``timestamp`` (docs/metering.md, "Partitions").

The existing rows are kept: the plain table is renamed, the partitioned one is created in its place (monthly
partitions for the months that hold events within three years back and three months ahead of now, the
rest in the default partition) and every row is copied over with its id, then the plain table is dropped.
Ids continue from the old sequence.

``(customer_external_id, event_id)`` stays unique across partitions: a unique key cannot span partitions
unless it contains the partition key, so the pair lives in the unpartitioned ``metering_eventkey`` table
(primary key on the pair) and an ``AFTER INSERT ... FOR EACH STATEMENT`` trigger on the events takes the
keys of every inserted row in one set-based insert (its transition table), whatever writes them (the API,
COPY, the ORM). A second copy of the same pair fails with a unique violation
there, exactly as the old unique constraint did. The primary key of the events becomes ``(id, timestamp)``
(a partitioned table's unique keys must contain the partition key); ``id`` still comes from one sequence,
so it stays unique and increasing, which the usage rollup's watermark relies on.

This copies every event once: on a large table run it in a maintenance window (docs/operations.md).
"""

from django.db import migrations, models

FORWARD = r"""
ALTER TABLE metering_event RENAME TO metering_event_unpartitioned;
ALTER INDEX event_customer_name_ts_idx RENAME TO event_customer_name_ts_idx_unpartitioned;
ALTER TABLE metering_event_unpartitioned RENAME CONSTRAINT event_unique_customer_event_id
    TO event_unique_customer_event_id_unpartitioned;
ALTER TABLE metering_event_unpartitioned RENAME CONSTRAINT metering_event_pkey TO metering_event_unpartitioned_pkey;

CREATE SEQUENCE metering_event_partitioned_id_seq AS bigint;
SELECT setval('metering_event_partitioned_id_seq',
              GREATEST((SELECT COALESCE(MAX(id), 0) FROM metering_event_unpartitioned), 1),
              (SELECT COUNT(*) > 0 FROM (SELECT 1 FROM metering_event_unpartitioned LIMIT 1) x));

CREATE TABLE metering_event (
    id bigint NOT NULL DEFAULT nextval('metering_event_partitioned_id_seq'),
    customer_external_id varchar(255) NOT NULL,
    event_id varchar(255) NOT NULL,
    event_name varchar(200) NOT NULL,
    "timestamp" timestamptz NOT NULL,
    properties jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT metering_event_pkey PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX event_customer_name_ts_idx ON metering_event (customer_external_id, event_name, "timestamp");
CREATE TABLE metering_event_default PARTITION OF metering_event DEFAULT;

CREATE TABLE metering_eventkey (
    customer_external_id varchar(255) NOT NULL,
    event_id varchar(255) NOT NULL,
    CONSTRAINT eventkey_unique_customer_event_id PRIMARY KEY (customer_external_id, event_id)
);

CREATE FUNCTION metering_event_key_take() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The unique key of events (customer, event id) across every partition: a duplicate fails here.
    INSERT INTO metering_eventkey (customer_external_id, event_id)
    SELECT customer_external_id, event_id FROM new_events;
    RETURN NULL;
END
$$;
CREATE TRIGGER event_key_take AFTER INSERT ON metering_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION metering_event_key_take();

DO $$
DECLARE
    month timestamptz;
BEGIN
    FOR month IN
        SELECT m FROM generate_series(date_trunc('month', now(), 'UTC'),
                                      date_trunc('month', now(), 'UTC') + interval '3 months',
                                      interval '1 month') AS g(m)
        UNION
        SELECT DISTINCT date_trunc('month', "timestamp", 'UTC') FROM metering_event_unpartitioned
        WHERE "timestamp" >= date_trunc('month', now(), 'UTC') - interval '36 months'
          AND "timestamp" < date_trunc('month', now(), 'UTC') + interval '4 months'
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF metering_event FOR VALUES FROM (%L) TO (%L)',
            'metering_event_p' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM'),
            month, (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'
        );
    END LOOP;
END
$$;

INSERT INTO metering_event (id, customer_external_id, event_id, event_name, "timestamp", properties, received_at)
SELECT id, customer_external_id, event_id, event_name, "timestamp", properties, received_at
FROM metering_event_unpartitioned ORDER BY id;

DROP TABLE metering_event_unpartitioned;
ALTER SEQUENCE metering_event_partitioned_id_seq RENAME TO metering_event_id_seq;
ALTER SEQUENCE metering_event_id_seq OWNED BY metering_event.id;
ANALYZE metering_event;
"""

BACKWARD = r"""
ALTER TABLE metering_event RENAME TO metering_event_partitioned;
ALTER INDEX event_customer_name_ts_idx RENAME TO event_customer_name_ts_idx_partitioned;
ALTER TABLE metering_event_partitioned RENAME CONSTRAINT metering_event_pkey TO metering_event_partitioned_pkey;
CREATE TABLE metering_event (
    id bigint NOT NULL PRIMARY KEY DEFAULT nextval('metering_event_id_seq'),
    customer_external_id varchar(255) NOT NULL,
    event_id varchar(255) NOT NULL,
    event_name varchar(200) NOT NULL,
    "timestamp" timestamptz NOT NULL,
    properties jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT event_unique_customer_event_id UNIQUE (customer_external_id, event_id)
);
CREATE INDEX event_customer_name_ts_idx ON metering_event (customer_external_id, event_name, "timestamp");
INSERT INTO metering_event SELECT * FROM metering_event_partitioned ORDER BY id;
ALTER SEQUENCE metering_event_id_seq OWNED BY metering_event.id;
DROP TABLE metering_event_partitioned;
DROP FUNCTION metering_event_key_take();
DROP TABLE metering_eventkey;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("metering", "0003_add_meter_allow_negative"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="event_unique_customer_event_id"),
                migrations.CreateModel(
                    name="EventKey",
                    fields=[
                        ("pk", models.CompositePrimaryKey("customer_external_id", "event_id", blank=True, editable=False, primary_key=True, serialize=False)),
                        ("customer_external_id", models.CharField(max_length=255)),
                        ("event_id", models.CharField(max_length=255)),
                    ],
                ),
            ],
        ),
    ]
