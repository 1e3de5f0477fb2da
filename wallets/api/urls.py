from django.urls import path

from . import views

urlpatterns = [
    path("wallets", views.WalletCreateApi.as_view(), name="wallet-create"),
    path("wallets/<str:wallet_id>", views.WalletDetailApi.as_view(), name="wallet-detail"),
    path("wallets/<str:wallet_id>/grants", views.WalletGrantCreateListApi.as_view(), name="wallet-grants"),
    path("wallets/<str:wallet_id>/transactions", views.WalletTransactionListApi.as_view(), name="wallet-transactions"),
    path("customers/<str:external_id>/wallets", views.CustomerWalletListApi.as_view(), name="customer-wallets"),
]
