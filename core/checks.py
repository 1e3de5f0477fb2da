"""System checks for configuration sanity (run by ``manage.py check``), not at import time."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def currencies_configured(app_configs, **kwargs):
    from core.money import CURRENCY_CHOICES

    known = {code for code, _ in CURRENCY_CHOICES}
    unknown = [c for c in settings.CURRENCIES if c not in known]
    if unknown:
        return [Error(f"CURRENCIES lists unsupported codes: {', '.join(unknown)}", id="billing.E001")]
    return []
