from django.urls import path

from . import views

urlpatterns = [
    path("customers", views.CustomerListCreateApi.as_view(), name="customers"),
    path("customers/<str:external_id>", views.CustomerDetailApi.as_view(), name="customer"),
    path("tax_rates", views.TaxRateListCreateApi.as_view(), name="tax-rates"),
    path("subscriptions", views.SubscriptionListCreateApi.as_view(), name="subscriptions"),
    path("subscriptions/<str:subscription_id>", views.SubscriptionDetailApi.as_view(), name="subscription"),
    path(
        "subscriptions/<str:subscription_id>/cancel", views.SubscriptionCancelApi.as_view(), name="subscription-cancel"
    ),
]
