"""The Celery app. Broker: CELERY_BROKER_URL (Redis in production and CI); with no broker, tasks run eagerly.

Delivery guarantees (settings: CELERY_TASK_ACKS_LATE, CELERY_TASK_REJECT_ON_WORKER_LOST, prefetch 1; each
task also says so itself): a message is acknowledged only after its task finished, so a worker killed
mid-task (SIGKILL, OOM, a lost machine) leaves the message with Redis, which delivers it again once the
visibility timeout has passed. The timeout must be longer than the longest task's hard time limit (the
billing run's 3,600 s), or Redis would hand a still-running task to a second worker: it is 7,200 s unless
the settings give one. Redelivery is safe because every task is idempotent by database constraints.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")

VISIBILITY_TIMEOUT = 7200  # seconds; > the longest task time_limit (invoicing.billing_run_execute: 3600)

app = Celery("billing_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _visibility_timeout_default(sender, **kwargs) -> None:
    """Give Redis a visibility timeout longer than any task, unless CELERY_BROKER_TRANSPORT_OPTIONS sets one."""
    options = dict(sender.conf.broker_transport_options or {})
    options.setdefault("visibility_timeout", VISIBILITY_TIMEOUT)
    sender.conf.broker_transport_options = options
