"""How the services are laid out: one owner per concept, no private module reached from outside its package, no
import cycle between the service modules of an app (no database needed; imports are read from the source, those
inside functions included)."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from importlib import import_module
from pathlib import Path
from types import ModuleType

import customers.services
import invoicing.services

ROOT = Path(__file__).resolve().parent.parent
APPS = ("billing_project", "catalog", "customers", "metering", "wallets", "invoicing")


def _public_functions(module: ModuleType) -> set[str]:
    """Functions a module defines itself (not imported ones) whose names do not start with an underscore."""
    return {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }


def _package_functions(package: ModuleType) -> set[str]:
    names = _public_functions(package)
    for info in pkgutil.iter_modules(package.__path__):
        names |= _public_functions(import_module(f"{package.__name__}.{info.name}"))
    return names


def _modules() -> dict[str, Path]:
    """The apps' modules by dotted name (a package by its own name), migrations left out."""
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _import_graph() -> dict[str, set[str]]:
    """``{module: the apps' modules it imports}``, anywhere in its source (module level or in a function)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_the_subscription_lifecycle_has_one_public_home():
    # Starting, canceling and advancing a subscription are invoicing's (invoicing.services.lifecycle and the
    # boundary); customers keeps row helpers only, named as such, so no two public functions share a name.
    in_customers = {name for name in _public_functions(customers.services) if name.startswith("subscription_")}
    in_invoicing = _package_functions(invoicing.services)
    assert in_customers and all(name.startswith("subscription_row_") for name in in_customers), in_customers
    assert not in_customers & in_invoicing
    assert {"subscription_start", "subscription_cancel"} <= _public_functions(
        import_module("invoicing.services.lifecycle")
    )


def test_private_modules_are_imported_only_inside_their_package():
    # wallets.services._ledger (the only code that appends to the ledger) is wallets' own: invoicing pays
    # invoices with credits through wallets.services.wallet_invoice_pay, never by writing ledger rows itself.
    reached = [
        (importer, target)
        for importer, targets in _import_graph().items()
        for target in targets
        for i, part in enumerate(target.split("."))
        if part.startswith("_") and not (importer + ".").startswith(".".join(target.split(".")[:i]) + ".")
    ]
    assert reached == []


def test_credits_are_turned_into_money_by_the_one_payment_loop():
    # Which wallets pay an invoice, in what order and how much, is decided once (wallets.credits.
    # invoice_payment_plan), for paying an invoice and for the real-time balance alike.
    callers = sorted(
        str(path.relative_to(ROOT))
        for path in _modules().values()
        if "credits_applicable(" in path.read_text() and path != ROOT / "wallets" / "credits.py"
    )
    assert callers == []


def _sibling_cycle(graph: dict[str, set[str]], ancestor: str) -> list[str] | None:
    """A cycle between the direct children of ``ancestor`` (a child depends on another when any module in it
    imports any module in the other), or None."""

    def child(name: str) -> str | None:
        if not name.startswith(ancestor + "."):
            return None
        return ancestor + "." + name[len(ancestor) + 1 :].split(".")[0]

    edges: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        source = child(importer)
        if source is not None:
            edges.setdefault(source, set()).update(t for t in map(child, targets) if t is not None and t != source)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_service_modules_import_each_other_in_one_direction():
    # invoicing.services: run imports boundary and invoices; boundary and lifecycle import invoices, lines and
    # credits (the seam to wallets); invoices imports lines and credits; nothing imports back. The auto top-up's
    # purchase invoice reaches the seam as a function argument and the lines a recalculated draft is rebuilt
    # with live in lines.py, so no module needs an import inside a function to dodge a cycle.
    graph = _import_graph()
    for ancestor in (
        "catalog",
        "customers",
        "metering",
        "wallets",
        "invoicing",
        "invoicing.services",
        "wallets.services",
    ):
        assert _sibling_cycle(graph, ancestor) is None, ancestor
