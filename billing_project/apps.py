from django.apps import AppConfig


class BillingProjectConfig(AppConfig):
    name = "billing_project"
    verbose_name = "Platform: API keys, audit and runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks, schema  # noqa: F401  (registers system checks and the OpenAPI auth scheme)
        from .roles import post_migrate_roles_sync

        post_migrate.connect(post_migrate_roles_sync, sender=self)
