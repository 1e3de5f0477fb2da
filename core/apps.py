from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The bottom layer: errors, money and currencies, API helpers and keys, the API audit log, history user."""

    name = "core"
    verbose_name = "Platform: API keys and audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, schema  # noqa: F401  (registers system checks and the OpenAPI auth scheme)
