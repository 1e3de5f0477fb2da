from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.views import healthz

api_v1 = [
    path("", include("catalog.api.urls")),
    path("", include("customers.api.urls")),
    path("", include("metering.api.urls")),
    path("", include("wallets.api.urls")),
    path("", include("invoicing.api.urls")),
    path("", include("webhooks.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include(api_v1)),
]

handler403 = "backoffice.admin_site.permission_denied"
handler404 = "core.views.not_found"
