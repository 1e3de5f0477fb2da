from django.urls import path

from . import views

urlpatterns = [
    path("webhook_endpoints", views.EndpointListCreateApi.as_view(), name="webhook-endpoints"),
    path("webhook_endpoints/<str:endpoint_id>", views.EndpointDetailApi.as_view(), name="webhook-endpoint-detail"),
    path(
        "webhook_endpoints/<str:endpoint_id>/deliveries",
        views.EndpointDeliveryListApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path("alerts", views.AlertListCreateApi.as_view(), name="alerts"),
    path("alerts/<str:alert_id>", views.AlertDetailApi.as_view(), name="alert-detail"),
    path("alerts/<str:alert_id>/triggers", views.AlertTriggerListApi.as_view(), name="alert-triggers"),
]
