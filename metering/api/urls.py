from django.urls import path

from . import views

urlpatterns = [
    path("meters", views.MeterListCreateApi.as_view(), name="meters"),
    path("meters/<str:key>", views.MeterDetailApi.as_view(), name="meter"),
    path("events", views.EventIngestApi.as_view(), name="events"),
    path("events/batch", views.EventBatchApi.as_view(), name="events-batch"),
]
