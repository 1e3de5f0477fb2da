from django.core.management.base import BaseCommand
from django.utils import timezone

from metering.services import usage_rollup_refresh


class Command(BaseCommand):
    help = "Fold newly arrived usage events into the hourly rollup (idempotent; reads are exact without it)."

    def handle(self, *args, **options):
        watermark = usage_rollup_refresh(now=timezone.now())
        self.stdout.write(f"Usage rollup holds events up to id {watermark}.")
