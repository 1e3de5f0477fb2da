"""How the services are laid out: one owner per concept (no database needed)."""

from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module
from types import ModuleType

import customers.services
import invoicing.services


def _public_functions(module: ModuleType) -> set[str]:
    """Functions a module defines itself (not imported ones) whose names do not start with an underscore."""
    return {
        name for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }


def _package_functions(package: ModuleType) -> set[str]:
    names = _public_functions(package)
    for info in pkgutil.iter_modules(package.__path__):
        names |= _public_functions(import_module(f"{package.__name__}.{info.name}"))
    return names


def test_the_subscription_lifecycle_has_one_public_home():
    # Starting, canceling and advancing a subscription are invoicing's (invoicing.services.lifecycle and the
    # boundary); customers keeps row helpers only, named as such, so no two public functions share a name.
    in_customers = {name for name in _public_functions(customers.services) if name.startswith("subscription_")}
    in_invoicing = _package_functions(invoicing.services)
    assert in_customers and all(name.startswith("subscription_row_") for name in in_customers), in_customers
    assert not in_customers & in_invoicing
    assert {"subscription_start", "subscription_cancel"} <= _public_functions(import_module("invoicing.services.lifecycle"))
