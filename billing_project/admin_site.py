"""The admin site: the product's name in the header and a finance dashboard as the front page."""

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

    def index(self, request, extra_context=None):
        from .dashboard import dashboard_context

        context = {"dashboard": dashboard_context(timezone.now())}
        context.update(extra_context or {})
        return super().index(request, extra_context=context)


class BillingAdminConfig(AdminConfig):
    default_site = "billing_project.admin_site.BillingAdminSite"
