"""Finance roles as Django groups: "Finance admin", "Finance viewer" and "Support".

- Finance admin: every permission of the billing apps (catalog, customers, metering, wallets, invoicing,
  the platform rows) and of the beat schedules, plus granting credits without limit.
- Finance viewer: read-only everywhere (view permissions only): no add/change/delete, no actions.
- Support: customers (view, add, change) and wallets (view, rename, grant credits up to
  ``settings.SUPPORT_GRANT_LIMIT`` in one action, however many wallets it selects); a wallet's terms (conversion
  rate, what it pays, low-balance threshold, auto top-up, status) are read-only for Support, enforced by the
  form (``wallets.change_wallet_terms``); no catalog, invoicing or schedules.

The groups are created by a migration; ``roles_sync`` runs after every ``migrate`` so permissions of
models added later join the groups too. Admin actions check these permissions as well as the forms.
"""

from __future__ import annotations

FINANCE_ADMIN = "Finance admin"
FINANCE_VIEWER = "Finance viewer"
SUPPORT = "Support"

BILLING_APPS = (
    "catalog",
    "customers",
    "metering",
    "wallets",
    "invoicing",
    "webhooks",
    "core",
    "django_celery_beat",
)

# Custom permissions, created here so they need no model change: (app_label, model, codename, name)
CUSTOM_PERMISSIONS = (
    ("wallets", "wallet", "grant_credits", "Can grant credits (up to the support limit)"),
    ("wallets", "wallet", "grant_credits_unlimited", "Can grant any amount of credits"),
    ("wallets", "wallet", "void_credits", "Can void remaining credits"),
    (
        "wallets",
        "wallet",
        "change_wallet_terms",
        "Can change a wallet's rate, what it pays, threshold, top-up and status",
    ),
    ("invoicing", "invoice", "finalize_invoice", "Can finalize, void and credit invoices"),
    ("core", "webhookdelivery", "resend_webhookdelivery", "Can send webhook deliveries again"),
)

SUPPORT_PERMISSIONS = (
    "customers.view_customer",
    "customers.add_customer",
    "customers.change_customer",
    "customers.view_subscription",
    "customers.view_taxrate",
    "wallets.view_wallet",
    "wallets.change_wallet",
    "wallets.view_creditgrant",
    "wallets.view_ledgerentry",
    "wallets.view_lowbalancealert",
    "wallets.grant_credits",
)


def roles_sync(apps=None, **kwargs) -> None:
    """Create the groups and (re)attach their permissions. Safe to run any number of times."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")

    for app_label, model, codename, name in CUSTOM_PERMISSIONS:
        ct = ContentType.objects.filter(app_label=app_label, model=model).first()
        if ct is not None:
            Permission.objects.get_or_create(content_type=ct, codename=codename, defaults={"name": name})

    billing = Permission.objects.filter(content_type__app_label__in=BILLING_APPS)
    logentry_view = Permission.objects.filter(content_type__app_label="admin", codename="view_logentry")

    admin_group, _ = Group.objects.get_or_create(name=FINANCE_ADMIN)
    admin_group.permissions.set(list(billing) + list(logentry_view))

    viewer, _ = Group.objects.get_or_create(name=FINANCE_VIEWER)
    viewer.permissions.set(list(billing.filter(codename__startswith="view_")) + list(logentry_view))

    support, _ = Group.objects.get_or_create(name=SUPPORT)
    wanted = []
    for dotted in SUPPORT_PERMISSIONS:
        app_label, codename = dotted.split(".")
        wanted += list(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    support.permissions.set(wanted)


def post_migrate_roles_sync(sender, **kwargs) -> None:
    # Runs once per migrate (for this app's signal only), after every app's permissions exist.
    if sender.name == "backoffice":
        roles_sync()
