from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from wallets.models import Wallet

from .customers import CustomerFactory


class WalletFactory(DjangoModelFactory):
    """An empty wallet (balance 0). Credits arrive only through wallets.services (so the ledger stays whole)."""

    class Meta:
        model = Wallet

    customer = factory.SubFactory(CustomerFactory)
    name = "Credits"
    currency = "USD"
    conversion_rate = Decimal("1")
    applies_to = Wallet.AppliesTo.ALL
