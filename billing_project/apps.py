from django.apps import AppConfig


class BillingProjectConfig(AppConfig):
    name = "billing_project"
    verbose_name = "Platform: API keys, audit and runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
