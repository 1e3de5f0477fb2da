from django.urls import path

from . import pricing, views

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
