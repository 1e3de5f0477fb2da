from django.urls import path

from . import views

urlpatterns = [
    path("meters", views.MeterListCreateApi.as_view(), name="meters"),
    path("meters/<str:key>", views.MeterDetailApi.as_view(), name="meter"),
    path("events", views.EventIngestApi.as_view(), name="events"),
    path("events/batch", views.EventBatchApi.as_view(), name="events-batch"),
    path("customers/<str:external_id>/usage", views.CustomerUsageApi.as_view(), name="customer-usage"),
    path(
        "customers/<str:external_id>/entitlements",
        views.CustomerEntitlementListApi.as_view(),
        name="customer-entitlements",
    ),
    path(
        "customers/<str:external_id>/entitlements/<str:feature>",
        views.CustomerEntitlementDetailApi.as_view(),
        name="customer-entitlement",
    ),
]
