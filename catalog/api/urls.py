from django.urls import path

from . import views

urlpatterns = [
    path("features", views.FeaturesApi.as_view(), name="features"),
    path("features/<str:key>", views.FeatureDetailApi.as_view(), name="feature-detail"),
    path("plans", views.PlansApi.as_view(), name="plans"),
    path("plans/<str:key>", views.PlanDetailApi.as_view(), name="plan-detail"),
    path("plans/<str:key>/versions", views.PlanVersionsApi.as_view(), name="plan-versions"),
    path("plans/<str:key>/versions/<str:number>", views.PlanVersionDetailApi.as_view(), name="plan-version-detail"),
    path(
        "plans/<str:key>/versions/<str:number>/publish",
        views.PlanVersionPublishApi.as_view(),
        name="plan-version-publish",
    ),
]
