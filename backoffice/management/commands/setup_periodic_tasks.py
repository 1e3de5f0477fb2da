"""Create or update the Celery beat schedules by name. Never deletes: finance's admin edits survive deploys."""

from django.core.management.base import BaseCommand
from django.db import transaction

SCHEDULES = [
    # (name, task, crontab kwargs, description)
    (
        "Billing run (hourly)",
        "invoicing.billing_run_execute",
        {"minute": "5"},
        "Period ends and starts, plan credits, rollover, expiry, draft finalization, alerts and top-ups.",
    ),
    (
        "Usage rollup (every 5 minutes)",
        "metering.usage_rollup_refresh",
        {"minute": "*/5"},
        "Folds closed hours of events into the hourly usage rollup that usage reads use.",
    ),
    (
        "Progressive billing watch (every 5 minutes)",
        "invoicing.progressive_watch",
        {"minute": "*/5"},
        "Invoices the usage so far of subscriptions whose lifetime usage reached a progressive billing threshold.",
    ),
    (
        "Webhook deliveries (every minute)",
        "webhooks.deliveries_send_due",
        {"minute": "*"},
        "Sends webhook deliveries that are due: events not sent yet after their commit, and retries.",
    ),
    (
        "Usage and spend alerts (every 5 minutes)",
        "webhooks.alerts_evaluate",
        {"minute": "*/5"},
        "Evaluates every usage and spend alert against the current period; each level triggers once a period.",
    ),
    (
        "Event partitions (daily)",
        "metering.event_partitions_ensure",
        {"minute": "17", "hour": "3"},
        "Creates the event table's monthly partitions for the coming months (docs/metering.md, Partitions).",
    ),
    (
        "Webhook pruning (daily)",
        "webhooks.prune",
        {"minute": "43", "hour": "3"},
        "Deletes webhook deliveries delivered more than 90 days ago and the events left without a delivery; "
        "failed and pending deliveries are kept (docs/webhooks.md, Retention).",
    ),
]


class Command(BaseCommand):
    help = "Upsert the periodic tasks (django-celery-beat) by name; existing schedules are left as finance set them."

    def handle(self, *args, **options):
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        with transaction.atomic():
            for name, task, cron, description in SCHEDULES:
                existing = PeriodicTask.objects.filter(name=name).first()
                if existing:
                    # Keep the schedule finance may have edited; only make sure the task name is right.
                    if existing.task != task:
                        existing.task = task
                        existing.save(update_fields=["task"])
                    self.stdout.write(f"kept   {name}")
                    continue
                schedule, _ = CrontabSchedule.objects.get_or_create(
                    minute=cron.get("minute", "*"),
                    hour=cron.get("hour", "*"),
                    day_of_week="*",
                    day_of_month="*",
                    month_of_year="*",
                    timezone="UTC",
                )
                PeriodicTask.objects.create(name=name, task=task, crontab=schedule, description=description)
                self.stdout.write(f"created {name}")
