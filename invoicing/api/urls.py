from django.urls import path

from . import changes, coupons, pricing, views

urlpatterns = [
    path("invoices", views.InvoiceListApi.as_view(), name="invoice-list"),
    path("invoices/<str:invoice_id>", views.InvoiceDetailApi.as_view(), name="invoice-detail"),
    path("invoices/<str:invoice_id>/recalculate", views.InvoiceRecalculateApi.as_view(), name="invoice-recalculate"),
    path("invoices/<str:invoice_id>/finalize", views.InvoiceFinalizeApi.as_view(), name="invoice-finalize"),
    path("invoices/<str:invoice_id>/void", views.InvoiceVoidApi.as_view(), name="invoice-void"),
    path("invoices/<str:invoice_id>/payments", views.InvoicePaymentCreateApi.as_view(), name="invoice-payments"),
    path("invoices/<str:invoice_id>/pdf", views.InvoicePdfApi.as_view(), name="invoice-pdf"),
    path(
        "customers/<str:external_id>/upcoming_invoice",
        views.UpcomingInvoiceApi.as_view(),
        name="customer-upcoming-invoice",
    ),
    path("credit_notes", views.CreditNoteCreateApi.as_view(), name="credit-note-create"),
    path("credit_notes/<str:credit_note_id>", views.CreditNoteDetailApi.as_view(), name="credit-note-detail"),
    path("coupons", coupons.CouponsApi.as_view(), name="coupon-list"),
    path("coupons/<str:code>", coupons.CouponDetailApi.as_view(), name="coupon-detail"),
    path("customers/<str:external_id>/coupons", coupons.CustomerCouponsApi.as_view(), name="customer-coupons"),
    path("addons", coupons.AddonsApi.as_view(), name="addon-list"),
    path("addons/<str:key>", coupons.AddonDetailApi.as_view(), name="addon-detail"),
    path(
        "subscriptions/<str:subscription_id>/change",
        changes.SubscriptionChangeApi.as_view(),
        name="subscription-change",
    ),
    path(
        "subscriptions/<str:subscription_id>/cancel_scheduled_change",
        changes.SubscriptionCancelScheduledChangeApi.as_view(),
        name="subscription-cancel-scheduled-change",
    ),
    path(
        "plans/<str:key>/versions/<str:number>/backtest",
        pricing.PlanVersionBacktestApi.as_view(),
        name="plan-version-backtest",
    ),
    path(
        "plans/<str:key>/versions/<str:number>/migrate",
        pricing.PlanVersionMigrateApi.as_view(),
        name="plan-version-migrate",
    ),
]
