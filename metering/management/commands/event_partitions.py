"""List the event table's monthly partitions, create the coming ones, or detach an old month for archiving."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from metering.partitions import PartitionError, event_partition_detach, event_partitions_ensure, event_partitions_list


class Command(BaseCommand):
    help = (
        "List the event partitions (with PostgreSQL's row estimate); --ensure creates the coming months' partitions "
        "(what the daily beat task does); --detach YYYY-MM detaches an old month, leaving a plain table to archive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ensure", action="store_true")
        parser.add_argument("--detach", metavar="YYYY-MM")

    def handle(self, *args, ensure=False, detach=None, **options):
        now = timezone.now()
        if ensure:
            created = event_partitions_ensure(now=now)
            self.stdout.write(f"Created {', '.join(created)}." if created else "Every partition exists already.")
        if detach:
            try:
                year, month = (int(part) for part in detach.split("-"))
                name = event_partition_detach(month=date(year, month, 1), now=now)
            except ValueError:
                raise CommandError(f"--detach takes a month as YYYY-MM; got {detach!r}.") from None
            except PartitionError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Detached {name}: archive it (pg_dump -t {name}), then DROP TABLE {name}.")
        for partition in event_partitions_list():
            span = f"{partition.start:%Y-%m}" if partition.start else "default (outside every month)"
            self.stdout.write(f"{partition.name:<32} {span:<32} ~{partition.estimated_rows:,} events")
