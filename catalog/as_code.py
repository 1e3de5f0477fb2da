"""Catalog as code: the whole catalog as one YAML file, exported and applied (``catalog_export``, ``catalog_apply``).

:func:`catalog_export` writes every meter (with its filters), feature, plan and plan version (prices with tiers,
entitlements, credit grants and every other field of :data:`VERSION_FIELDS`) in API.md's shapes; the file can be
reviewed in a pull request and applied to another installation (staging to production).

:func:`catalog_apply` compares a file with the database and creates what is missing, in one transaction. Rules
(API.md "Pricing operations"; where it is silent, chosen here and written in docs/pricing-operations.md):

* It only **creates**: meters, features and plans missing from the database, and plan versions whose contents
  (:data:`VERSION_FIELDS`) match no version of the plan. Nothing is deleted because the file omits it, and
  nothing stored is edited: a meter, feature or plan whose stored fields differ from the file is reported as
  ``not applied`` (edit those in the admin, where their own rules and locks apply).
* A version of the file that differs from the stored version of the same number becomes a **new version** (the
  plan's next number), a draft unless ``publish``; a published version is never edited. It is ``unchanged``
  when the stored version of its number, or a later version of the plan, has the same contents, so applying
  the same file twice changes nothing.
* New versions are drafts unless ``publish``. Their ``effective_from`` is the file's for a plan created by
  this apply, else the later of the file's and now (a new price never takes effect in the past by accident).
* Every error names the path of the bad key in the file (``plans[2].versions[1].prices[0].tiers``), all at
  once; nothing is saved when there is one. ``dry_run`` does the same work and rolls it back, so the printed
  diff is exactly what applying would do.
* The file's ``number``, ``status``, ``effective_from`` and ``notes`` of a version are information, not contents;
  a version created from the file keeps its ``notes`` (else says it was created by ``catalog_apply``).

A field of a plan version is one row of :data:`VERSION_FIELDS`: how the stored value reads in the file and how
the file's value is checked into the same form; ``plan_version_create`` takes it by its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import yaml
from django.db import transaction

from core.errors import ValidationFailed
from metering.models import Meter
from metering.services import meter_create_in_transaction

from .commitments import version_terms_validate
from .models import Entitlement, Feature, Plan, PlanVersion
from .price_models import price_model
from .services import (
    feature_create_in_transaction,
    feature_validate,
    plan_create_in_transaction,
    plan_validate,
    plan_version_children_validate,
    plan_version_create_in_transaction,
)
from .validation import FieldErrors, datetime_parse, int_parse, items_parse, key_parse

__all__ = [
    "VERSION_FIELDS",
    "ApplyReport",
    "VersionField",
    "catalog_apply",
    "catalog_export",
    "catalog_yaml_dump",
    "catalog_yaml_load",
]

#: The most meters, features or plans a file may hold, and versions a plan may hold in it.
MAX_ITEMS = 10_000


# --------------------------------------------------------------------------- the file's forms of values


def _number(value: Decimal | None) -> str | None:
    """A decimal as the file writes it: a string without exponent or trailing zeros (``"10"``, ``"0.000002"``)."""
    if value is None:
        return None
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _price_form(*, name: str, model: str, meter: str | None, timing: str, terms: Mapping[str, Any]) -> dict:
    form: dict[str, Any] = {"name": name, "model": model}
    if meter:
        form["meter"] = meter
    form["timing"] = timing
    for column in price_model(model).fields:
        value = terms.get(column)
        if column == "tiers":
            form["tiers"] = [
                {
                    "up_to": _number(t.up_to),
                    "unit_amount": _number(t.unit_amount),
                    "flat_amount": _number(t.flat_amount),
                }
                for t in value or []
            ]
        elif isinstance(value, Decimal):
            form[column] = _number(value)
        elif value not in (None, ""):
            form[column] = value
    return form


def _entitlement_form(*, feature: str, enabled: bool, limit, reset: str, soft: bool, value: str) -> dict:
    """API.md's ENTITLEMENT; keys at their API default (no limit, reset each period, hard, no value) left out."""
    form: dict[str, Any] = {"feature": feature, "enabled": enabled}
    if limit is not None:
        form["limit"] = _number(limit)
    if reset != Entitlement.Reset.BILLING_PERIOD:
        form["reset"] = reset
    if soft:
        form["soft"] = True
    if value:
        form["value"] = value
    return form


def _grant_form(row: Mapping[str, Any]) -> dict:
    return {
        "name": row["name"],
        "credits": _number(row["credits"]),
        "cadence": row["cadence"],
        "rollover_cap": _number(row["rollover_cap"]),
        "expire_after_periods": row["expire_after_periods"],
        "forfeit_on_end": row["forfeit_on_end"],
        "priority": row["priority"],
    }


# --------------------------------------------------------------------------- plan version fields


def _children_parse(kind: str) -> Callable[[Any, str, FieldErrors], Any]:
    """Check one list of a version by the catalog's own rules; errors are named under the version's path."""

    def parse(value: Any, path: str, errors: FieldErrors) -> Any:
        # ``partial``: a draft may hold a tiered price whose tiers are not entered yet (the admin allows it), so
        # its export compares equal to it; creating a version from the file checks it in full.
        local = FieldErrors()
        rows = getattr(
            plan_version_children_validate(**{kind: value if value is not None else []}, partial=True, errors=local),
            kind,
        )
        for name, messages in local.items.items():
            # The catalog names the list's items from the list itself (``prices[0].tiers``); ``path`` is the list's.
            where = path + name[len(kind) :] if name.startswith(kind) else f"{path}.{name}"
            for message in messages:
                errors.add(where, message)
        if local.items:
            return None
        if kind == "prices":
            return [
                _price_form(
                    name=s.name, model=s.model, meter=getattr(s.meter, "key", None), timing=s.timing, terms=s.terms
                )
                for s in rows
            ]
        # Stored entitlements read in feature order and grants in priority order (then as created): the file's
        # lists are compared in that order, so listing them in another order is no change.
        if kind == "entitlements":
            forms = [_entitlement_form(**{**row, "feature": row["feature"].key}) for row in rows]
            return sorted(forms, key=lambda form: form["feature"])
        return sorted((_grant_form(row) for row in rows), key=lambda form: form["priority"])

    return parse


def _stored_prices(version: PlanVersion) -> list[dict]:
    forms = []
    for price in version.prices.all():
        terms: dict[str, Any] = {c: getattr(price, c) for c in price_model(price.model).fields if c != "tiers"}
        terms["tiers"] = list(price.tiers.all())
        forms.append(
            _price_form(
                name=price.name,
                model=price.model,
                meter=price.meter.key if price.meter_id else None,
                timing=price.timing,
                terms=terms,
            )
        )
    return forms


def _stored_entitlements(version: PlanVersion) -> list[dict]:
    return [
        _entitlement_form(
            feature=e.feature.key, enabled=e.enabled, limit=e.limit, reset=e.reset, soft=e.soft, value=e.value
        )
        for e in version.entitlements.all()
    ]


def _stored_grants(version: PlanVersion) -> list[dict]:
    return [_grant_form({name: getattr(g, name) for name in _GRANT_FIELDS}) for g in version.credit_grants.all()]


_GRANT_FIELDS = ("name", "credits", "cadence", "rollover_cap", "expire_after_periods", "forfeit_on_end", "priority")


def attribute(name: str) -> Callable[[PlanVersion], Any]:
    """The stored value of a plain column of the version (a decimal as the file writes it)."""

    def read(version: PlanVersion) -> Any:
        value = getattr(version, name)
        return _number(value) if isinstance(value, Decimal) else value

    return read


def whole_number(value: Any, path: str, errors: FieldErrors) -> int | None:
    """A file value checked as a whole number >= 0 (for fields such as ``trial_days``)."""
    return int_parse(value, path, errors, default=0, minimum=0)


def _terms_parse(name: str) -> Callable[[Any, str, FieldErrors], Any]:
    """The parser of ``minimum_commitment`` or ``progressive_thresholds``: the API's and the admin's own rules
    (:func:`catalog.commitments.version_terms_validate`), errors under the file's path; the usage-price rule is
    checked when the version is created."""

    def parse(value: Any, path: str, errors: FieldErrors) -> Any:
        local = FieldErrors()
        commitment, thresholds = version_terms_validate(
            minimum_commitment=value if name == "minimum_commitment" else None,
            progressive_thresholds=value if name == "progressive_thresholds" else [],
            has_usage_prices=None,
            errors=local,
        )
        for messages in local.items.values():
            for message in messages:
                errors.add(path, message)
        if name == "progressive_thresholds":
            return thresholds
        return None if commitment is None else _number(commitment)

    return parse


@dataclass(frozen=True)
class VersionField:
    """One field of a plan version in the file.

    ``stored(version)``: the stored value in the file's form; ``parse(value, path, errors)``: the file's value
    checked into that same form (errors added under ``path``), so the two compare equal when nothing changed;
    ``default``: the value of a version that does not give the field. ``plan_version_create`` takes the file's
    value under ``name``.
    """

    name: str
    stored: Callable[[PlanVersion], Any]
    parse: Callable[[Any, str, FieldErrors], Any]
    default: Any = None


#: Every field of a plan version the file carries, in the order it writes them. A new field is one row (its
#: model column and ``plan_version_create`` keyword of the same name come with it), for example
#: ``VersionField("trial_days", attribute("trial_days"), whole_number, default=0)``.
VERSION_FIELDS: tuple[VersionField, ...] = (
    VersionField("prices", _stored_prices, _children_parse("prices"), default=()),
    VersionField("entitlements", _stored_entitlements, _children_parse("entitlements"), default=()),
    VersionField("credit_grants", _stored_grants, _children_parse("credit_grants"), default=()),
    VersionField("trial_days", attribute("trial_days"), whole_number, default=0),
    VersionField("minimum_commitment", attribute("minimum_commitment"), _terms_parse("minimum_commitment")),
    VersionField(
        "progressive_thresholds",
        attribute("progressive_thresholds"),
        _terms_parse("progressive_thresholds"),
        default=[],
    ),
)

#: Keys of a version in the file that are information, not contents.
VERSION_INFO = ("number", "status", "effective_from", "notes")


def _version_contents(version: PlanVersion) -> dict[str, Any]:
    return {f.name: f.stored(version) for f in VERSION_FIELDS}


# --------------------------------------------------------------------------- export


def _meter_form(meter: Meter) -> dict:
    form: dict[str, Any] = {
        "key": meter.key,
        "name": meter.name,
        "event_name": meter.event_name,
        "aggregation": meter.aggregation,
    }
    if meter.field:
        form["field"] = meter.field
    if meter.multiplier is not None:
        form["multiplier"] = _number(meter.multiplier)
    filters = [{"property": f.property, "values": list(f.values)} for f in meter.filters.all()]
    if filters:
        form["filters"] = filters
    if meter.allow_negative:
        form["allow_negative"] = True
    return form


def _feature_form(feature: Feature) -> dict:
    form: dict[str, Any] = {"key": feature.key, "name": feature.name, "type": feature.type}
    if feature.meter_id:
        form["meter"] = feature.meter.key
    for name in ("unit_name", "description"):
        if getattr(feature, name):
            form[name] = getattr(feature, name)
    return form


def _plan_form(plan: Plan) -> dict:
    form: dict[str, Any] = {"key": plan.key, "name": plan.name}
    if plan.description:
        form["description"] = plan.description
    form.update({"currency": plan.currency, "interval": plan.interval})
    return form


def _versions_of(plans: Sequence[int] | None = None):
    qs = PlanVersion.objects.select_related("plan").prefetch_related(
        "prices__tiers", "prices__meter", "entitlements__feature", "credit_grants"
    )
    if plans is not None:
        qs = qs.filter(plan_id__in=plans)
    return qs.order_by("plan__key", "number")


def catalog_export() -> dict[str, Any]:
    """The whole catalog in the file's shape: ``{"meters", "features", "plans"}``, each ordered by key."""
    versions: dict[int, list[dict]] = {}
    for version in _versions_of():
        form: dict[str, Any] = {
            "number": version.number,
            "status": version.status,
            "effective_from": _instant(version.effective_from),
        }
        if version.notes:
            form["notes"] = version.notes
        form.update(_version_contents(version))
        versions.setdefault(version.plan_id, []).append(form)
    return {
        "meters": [_meter_form(m) for m in Meter.objects.prefetch_related("filters").order_by("key")],
        "features": [_feature_form(f) for f in Feature.objects.select_related("meter").order_by("key")],
        "plans": [{**_plan_form(p), "versions": versions.get(p.pk, [])} for p in Plan.objects.order_by("key")],
    }


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order written, long strings kept on one line."""


_Dumper.add_representer(dict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data.items()))


def catalog_yaml_dump(data: Mapping[str, Any]) -> str:
    header = (
        "# Catalog file: apply with `python manage.py catalog_apply FILE [--dry-run] [--publish]`.\n"
        "# Amounts are strings (exact decimals); up_to is inclusive; see docs/pricing-operations.md.\n"
    )
    body = yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120
    )
    return header + body


def catalog_yaml_load(text: str) -> Any:
    """The file's data (plain YAML: strings, numbers, lists, mappings); a YAML syntax error is a ``ValidationFailed``
    naming the line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValidationFailed(f"Not a YAML file{where}: {getattr(exc, 'problem', exc)}", field="file") from None


# --------------------------------------------------------------------------- apply


@dataclass
class ApplyReport:
    """What an apply did (or, for a dry run, would do): one entry per item of the file, in the file's order.

    ``entries``: ``(status, what, detail lines)``, ``status`` one of ``added``, ``changed`` (a new version for a
    changed one), ``unchanged``, ``not applied`` (a stored meter, feature or plan that differs from the file).
    """

    dry_run: bool = False
    entries: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def add(self, status: str, what: str, detail: Sequence[str] = ()) -> None:
        self.entries.append((status, what, list(detail)))

    def count(self, status: str) -> int:
        return sum(1 for s, _, _ in self.entries if s == status)

    @property
    def changes(self) -> int:
        return self.count("added") + self.count("changed")

    SIGNS = {"added": "+", "changed": "~", "unchanged": "=", "not applied": "!"}

    def lines(self, *, verbose: bool = False) -> list[str]:
        """The readable diff: added, changed and not-applied items with their details (unchanged ones when
        ``verbose``), then a summary line."""
        out: list[str] = []
        for status, what, detail in self.entries:
            if status == "unchanged" and not verbose:
                continue
            out.append(f"{self.SIGNS[status]} {what}: {status}")
            out.extend(f"    {line}" for line in detail)
        counts = ", ".join(f"{self.count(s)} {s}" for s in self.SIGNS)
        out.append(("No changes. " if not self.changes else "") + f"Summary: {counts}.")
        if self.dry_run:
            out.append("Dry run: nothing was saved.")
        return out


class _DryRun(Exception):
    def __init__(self, report: ApplyReport):
        self.report = report


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """``prices[0].amount: 10 -> 12`` lines, one per leaf that differs between two file forms."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            here = f"{path}.{key}" if path else str(key)
            out += _differences(old.get(key), new.get(key), here)
        return out
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        out = []
        for i in range(max(len(old), len(new))):
            here = f"{path}[{i}]"
            if i >= len(old):
                out.append(f"{here}: added {_short(new[i])}")
            elif i >= len(new):
                out.append(f"{here}: removed {_short(old[i])}")
            else:
                out += _differences(old[i], new[i], here)
        return out
    return [] if old == new else [f"{path}: {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = (
        "(none)"
        if value is None
        else (value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip())
    )
    return text if len(text) <= 80 else text[:79] + "…"


def _unknown_keys(row: Mapping[str, Any], allowed: Sequence[str], path: str, errors: FieldErrors) -> None:
    for key in row:
        if key not in allowed:
            errors.add(f"{path}.{key}" if path else str(key), f"Unknown key; expected one of: {', '.join(allowed)}.")


METER_KEYS = ("key", "name", "event_name", "aggregation", "field", "multiplier", "filters", "allow_negative")
FEATURE_KEYS = ("key", "name", "type", "meter", "unit_name", "description")
PLAN_KEYS = ("key", "name", "description", "currency", "interval", "versions")


def _meters_apply(rows: list[Mapping[str, Any]], report: ApplyReport, errors: FieldErrors) -> None:
    stored = {m.key: m for m in Meter.objects.prefetch_related("filters")}
    for i, row in enumerate(rows):
        path = f"meters[{i}]"
        _unknown_keys(row, METER_KEYS, path, errors)
        key = key_parse(row.get("key"), f"{path}.key", errors)
        if not key:
            continue
        values = {name: row[name] for name in METER_KEYS if name in row}
        if key in stored:
            differs = _differences(_meter_form(stored[key]), _meter_form_of(values))
            report.add("not applied" if differs else "unchanged", f"meter {key}", differs)
            continue
        missing = [name for name in ("name", "event_name", "aggregation") if not row.get(name)]
        for name in missing:
            errors.add(f"{path}.{name}", "This field is required.")
        if missing:
            continue
        if row["aggregation"] not in Meter.Aggregation.values:
            errors.add(f"{path}.aggregation", f"Must be one of: {', '.join(Meter.Aggregation.values)}.")
            continue
        try:
            with transaction.atomic():
                stored[key] = meter_create_in_transaction(**values)
        except ValidationFailed as exc:
            errors.add(f"{path}.{exc.field}" if exc.field else path, exc.message)
            continue
        report.add("added", f"meter {key}")


def _meter_form_of(values: Mapping[str, Any]) -> dict:
    """The file's meter in the export's form (for the comparison with a stored meter)."""
    form = {name: values.get(name) for name in ("key", "name", "event_name", "aggregation")}
    if values.get("field"):
        form["field"] = values["field"]
    if values.get("multiplier") is not None:
        try:
            form["multiplier"] = _number(Decimal(str(values["multiplier"])))
        except ArithmeticError:
            form["multiplier"] = values["multiplier"]
    if values.get("filters"):
        form["filters"] = values["filters"]
    if values.get("allow_negative"):
        form["allow_negative"] = True
    return form


def _merge(local: FieldErrors, errors: FieldErrors, path: str) -> bool:
    for name, messages in local.items.items():
        for message in messages:
            errors.add(f"{path}.{name}", message)
    return bool(local.items)


def _features_apply(rows: list[Mapping[str, Any]], report: ApplyReport, errors: FieldErrors) -> None:
    stored = {f.key: f for f in Feature.objects.select_related("meter")}
    for i, row in enumerate(rows):
        path = f"features[{i}]"
        _unknown_keys(row, FEATURE_KEYS, path, errors)
        local = FieldErrors()
        values = feature_validate(row, errors=local)
        if _merge(local, errors, path):
            continue
        key = values["key"]
        if key in stored:
            values["meter"] = getattr(values["meter"], "key", None)
            wanted = {k: v for k, v in values.items() if v not in (None, "")}
            differs = _differences(_feature_form(stored[key]), wanted)
            report.add("not applied" if differs else "unchanged", f"feature {key}", differs)
            continue
        try:
            with transaction.atomic():
                stored[key] = feature_create_in_transaction(**values)
        except ValidationFailed as exc:
            errors.add(f"{path}.{exc.field}" if exc.field else path, exc.message)
            continue
        report.add("added", f"feature {key}")


def _plans_apply(
    rows: list[Mapping[str, Any]], report: ApplyReport, errors: FieldErrors, *, publish: bool, now: datetime
) -> None:
    stored = {p.key: p for p in Plan.objects.all()}
    for i, row in enumerate(rows):
        path = f"plans[{i}]"
        _unknown_keys(row, PLAN_KEYS, path, errors)
        local = FieldErrors()
        values = plan_validate({k: v for k, v in row.items() if k != "versions"}, errors=local)
        versions = items_parse(row.get("versions"), "versions", local, limit=MAX_ITEMS)
        if _merge(local, errors, path):
            continue
        plan = stored.get(values["key"])
        created = plan is None
        if created:
            plan = stored[values["key"]] = plan_create_in_transaction(**values)
            report.add("added", f"plan {plan.key}")
        else:
            differs = _differences(_plan_form(plan), {k: v for k, v in values.items() if v not in (None, "")})
            report.add("not applied" if differs else "unchanged", f"plan {plan.key}", differs)
        _versions_apply(plan, versions, path, report, errors, created=created, publish=publish, now=now)


def _versions_apply(
    plan: Plan,
    rows: list[Mapping[str, Any]],
    path: str,
    report: ApplyReport,
    errors: FieldErrors,
    *,
    created: bool,
    publish: bool,
    now: datetime,
) -> None:
    stored = {v.number: v for v in _versions_of([plan.pk])}
    contents = {number: _version_contents(v) for number, v in stored.items()}
    for j, row in enumerate(rows):
        here = f"{path}.versions[{j}]"
        _unknown_keys(row, (*VERSION_INFO, *(f.name for f in VERSION_FIELDS)), here, errors)
        before = len(errors.items)
        wanted = {f.name: f.parse(row.get(f.name, f.default), f"{here}.{f.name}", errors) for f in VERSION_FIELDS}
        number = int_parse(row.get("number"), f"{here}.number", errors, default=None, minimum=1)
        effective_from = datetime_parse(
            _text_instant(row.get("effective_from")), f"{here}.effective_from", errors, default=now
        )
        if len(errors.items) > before:
            continue
        same = stored.get(number) if number is not None else None
        label = f"plan {plan.key} v{number}" if number is not None else f"plan {plan.key} (version {j + 1} of the file)"
        if same is not None and contents[number] == wanted:
            report.add("unchanged", label)
            continue
        later = [n for n, c in contents.items() if c == wanted and (number is None or n > number)]
        if later:
            report.add("unchanged", label, [f"already applied as v{max(later)}"])
            continue
        local = FieldErrors()
        try:
            with transaction.atomic():
                version = plan_version_create_in_transaction(
                    plan=plan,
                    **{f.name: row.get(f.name, f.default) for f in VERSION_FIELDS},
                    publish=publish,
                    effective_from=effective_from if created else max(effective_from, now),
                    notes=row.get("notes") or f"Created by catalog_apply from {label}.",
                    now=now,
                )
        except ValidationFailed as exc:
            for name, messages in getattr(exc, "errors", {exc.field or "": [exc.message]}).items():
                for message in messages:
                    local.add(name, message)
            _merge(local, errors, here)
            continue
        contents[version.number] = _version_contents(version)
        stored[version.number] = version
        state = "published" if publish else "draft"
        if same is not None:
            detail = [f"becomes new {state} v{version.number} (v{number} is {same.status} and is not edited)"]
            report.add("changed", label, detail + _differences(contents[number], wanted)[:30])
        else:
            report.add("added", f"plan {plan.key} v{version.number} ({state})")


def _text_instant(value: Any) -> Any:
    """YAML reads an unquoted ``2026-01-01T00:00:00Z`` as a datetime: back to its text for the API's parser."""
    return _instant(value) if isinstance(value, datetime) else value


def catalog_apply(*, data: Any, dry_run: bool = False, publish: bool = False, now: datetime) -> ApplyReport:
    """Apply a catalog file's data (see the module's rules). Raises ``CatalogInvalid`` naming every bad path."""
    report = ApplyReport(dry_run=dry_run)
    try:
        with transaction.atomic(durable=True):
            errors = FieldErrors()
            if not isinstance(data, Mapping):
                errors.add("file", "The file must hold a mapping with meters, features and plans.")
                errors.raise_if_any()
            _unknown_keys(data, ("meters", "features", "plans"), "", errors)
            lists = {
                name: items_parse(data.get(name), name, errors, limit=MAX_ITEMS)
                for name in ("meters", "features", "plans")
            }
            _meters_apply(lists["meters"], report, errors)
            _features_apply(lists["features"], report, errors)
            _plans_apply(lists["plans"], report, errors, publish=publish, now=now)
            errors.raise_if_any()
            if dry_run:
                raise _DryRun(report)
    except _DryRun:
        pass
    return report
