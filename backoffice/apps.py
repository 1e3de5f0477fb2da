from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The top layer: the finance dashboard, the customer 360 panel, roles and the demo loader."""

    name = "backoffice"
    verbose_name = "Back office"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .roles import post_migrate_roles_sync

        post_migrate.connect(post_migrate_roles_sync, sender=self)
