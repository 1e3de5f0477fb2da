"""Back-office admin registrations: the pricing operations screens (backoffice.pricing_ops)."""

from django.contrib import admin

from invoicing.models import BacktestRun, SubscriptionMigration

from .pricing_ops import BacktestRunAdmin, SubscriptionMigrationAdmin

admin.site.register(BacktestRun, BacktestRunAdmin)
admin.site.register(SubscriptionMigration, SubscriptionMigrationAdmin)
