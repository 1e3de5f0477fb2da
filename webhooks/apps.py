from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks and alerts"

    def ready(self) -> None:
        from core.outbox import outbox_configure

        from .representations import represent
        from .tasks import send_soon

        # Events carry the object as the API shows it; after a commit that recorded events, they are sent
        # (the beat task sends whatever is due anyway).
        outbox_configure(represent=represent, send=send_soon)
