"""The admin site: the product's name in the header, a finance dashboard as the front page, a sign-in
form that locks a username out of an address after repeated failures (core.auth), and a refusal (403) shown as
one of its own pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils import timezone


class BillingAdminSite(admin.AdminSite):
    site_header = f"{settings.PRODUCT_NAME} billing back office"
    site_title = f"{settings.PRODUCT_NAME} billing"
    index_title = "Dashboard"
    index_template = "admin/billing_index.html"
    # The header's link beside "Log out": the project serves no public site (Django's "View site" opened a 404).
    site_url = "/api/docs/"

    @property
    def login_form(self):
        from core.auth import (
            LockoutAuthenticationForm,  # forms import models: not while the app registry loads
        )

        return LockoutAuthenticationForm

    def index(self, request, extra_context=None):
        from .dashboard import dashboard_context

        invoicing = request.user.has_perm("invoicing.view_invoice")  # Support sees no invoice amounts
        context = {"dashboard": dashboard_context(timezone.now(), invoicing=invoicing)}
        context.update(extra_context or {})
        return super().index(request, extra_context=context)


def permission_denied(request, exception=None):
    """403 (``handler403``): under the admin, a page of the admin itself (its header, its menu of what the role
    may open, a way back) saying what was refused; elsewhere Django's own page."""
    from django.contrib.admin import site
    from django.shortcuts import render
    from django.urls import reverse
    from django.views.defaults import permission_denied as django_permission_denied

    if not request.path.startswith(reverse("admin:index")):
        return django_permission_denied(request, exception)
    roles = ", ".join(request.user.groups.values_list("name", flat=True)) if request.user.is_authenticated else ""
    context = {**site.each_context(request), "title": "Permission denied", "roles": roles}
    return render(request, "admin/403.html", context, status=403)


class BillingAdminConfig(AdminConfig):
    default_site = "backoffice.admin_site.BillingAdminSite"

    def ready(self) -> None:
        _readable_decimals()  # before super().ready(): model admins read the form field defaults when registered
        super().ready()


def _readable_decimals() -> None:
    """Show stored decimals as people write them in every admin list, read-only field and editable field.

    Credits, quantities and unit prices are stored with 12 decimal places; Django's admin would print
    ``10000.000000000000`` (and ``0E-12`` for a stored zero). Read-only displays show ``10,000`` (``0.000002``
    stays exact); editable fields of every admin form and inline hold the plain text (``10000``, ``0.05``):
    :class:`core.forms.DecimalInput`, the admin's default widget for decimal columns. Nothing typed is rounded.
    """
    from decimal import Decimal

    from django.contrib.admin import helpers, options, utils
    from django.contrib.admin.templatetags import admin_list
    from django.db import models

    from core.forms import DecimalInput
    from core.money import format_decimal

    options.FORMFIELD_FOR_DBFIELD_DEFAULTS[models.DecimalField] = {"widget": DecimalInput}

    original = utils.display_for_field

    def display_for_field(value, field, empty_value_display, *args, **kwargs):
        if isinstance(field, models.DecimalField) and isinstance(value, Decimal) and not field.choices:
            return format_decimal(value)
        return original(value, field, empty_value_display, *args, **kwargs)

    for module in (utils, helpers, admin_list):
        module.display_for_field = display_for_field
