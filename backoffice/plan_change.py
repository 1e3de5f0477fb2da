"""The admin's "Change plan..." flow on a subscription (and from the customer 360 page), and "cancel the scheduled
change".

Three steps, each a call to ``invoicing.services.subscription_change`` (the service the API calls):

1. a form: the new plan (same currency), when (auto / now / at the period's end), optionally an instant and a
   published version of the new plan to pin (as the API's ``pinned_version``);
2. the preview: the same change run with ``preview=True`` (rolled back), shown side by side: old and new plan
   with their fixed fees per year, upgrade or downgrade and when it applies, the credit note(s), the change
   invoice's lines and totals, and the effect on plan credits. The instant the preview used travels with the
   confirmation, so confirming applies exactly what was shown;
3. the confirmation: the real change, logged on the subscription (and its successor), then its page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from catalog.models import Plan, PlanVersion
from core.errors import BillingError
from core.instants import format_instant, validate_instant
from core.money import format_decimal, format_money
from customers.models import Subscription
from invoicing.services import ChangeOutcome, subscription_change, subscription_change_cancel

WHEN_CHOICES = [
    ("auto", "Automatic: an upgrade now, a downgrade at the end of the current period"),
    ("now", "Now (the unused part of the current period is credited)"),
    ("period_end", "At the end of the current period"),
]


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), label="New plan")
    at = forms.ChoiceField(choices=WHEN_CHOICES, widget=forms.RadioSelect, initial="auto", label="When")
    effective_at = forms.DateTimeField(
        required=False,
        validators=[validate_instant],
        label="Effective at",
        help_text="UTC, e.g. 2026-04-16 00:00. Empty = now. May be in the past, not before the current period's start.",
    )

    pinned_version = forms.ModelChoiceField(
        queryset=PlanVersion.objects.none(),
        required=False,
        label="Version of the new plan",
        empty_label="The version in effect (default)",
        help_text=(
            "Optional: keep the new subscription on this published version (e.g. a grandfathered price) instead of "
            "the version in effect at each period's start."
        ),
        error_messages={
            "invalid_choice": "Choose a published version of the new plan from the list, or leave it empty.",
        },
    )

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        plans = (
            Plan.objects.filter(currency=subscription.customer.currency)
            .exclude(pk=subscription.plan_id)
            .order_by("key")
        )
        self.fields["plan"].queryset = plans
        pinned = self.fields["pinned_version"]
        pinned.queryset = (
            PlanVersion.objects.filter(plan__in=plans, status=PlanVersion.Status.PUBLISHED)
            .select_related("plan")
            .order_by("plan__key", "number")
        )
        pinned.label_from_instance = _version_label

    def clean(self):
        values = super().clean()
        plan, pinned = values.get("plan"), values.get("pinned_version")
        if plan is not None and pinned is not None and pinned.plan_id != plan.pk:
            self.add_error(
                "pinned_version",
                f"Version {pinned.number} is a version of {pinned.plan.name}, not of the new plan {plan.name}: "
                f"choose a version of {plan.name}, or leave it empty.",
            )
        return values


def _version_label(version: PlanVersion) -> str:
    return f"{version.plan.name}: version {version.number} (from {format_instant(version.effective_from)})"


def _version_side(version, yearly: Decimal, currency: str) -> dict:
    plan = version.plan
    return {
        "plan": plan.name,
        "key": plan.key,
        "version": version.number,
        "interval": plan.get_interval_display(),
        "trial_days": version.trial_days,
        "yearly": format_money(yearly, currency),
        "fees": [
            f"{p.name}: {format_money(p.amount, currency)} per {plan.interval}"
            for p in version.prices.all()
            if p.amount is not None and p.meter_id is None
        ],
    }


def present(outcome: ChangeOutcome) -> dict:
    """Everything the preview and the confirmation message show, read inside the change's transaction."""
    currency = outcome.subscription.customer.currency
    invoice = outcome.invoice
    return {
        "applies": outcome.applies,
        "when": outcome.effective_at,
        "upgrade": outcome.upgrade,
        "old": _version_side(outcome.old_version, outcome.old_yearly, currency),
        "new": _version_side(outcome.new_version, outcome.new_yearly, currency),
        "credit_notes": [
            {
                "invoice": note.invoice.number or f"Draft #{note.invoice_id}",
                "amount": format_money(note.amount, note.currency),
                "refund_to": note.get_refund_to_display(),
                "reason": note.reason,
            }
            for note in outcome.credit_notes
        ],
        "credit_lines": [
            {"text": line["text"], "amount": format_money(line["amount"], currency)} for line in outcome.credit_lines
        ],
        "invoice": None
        if invoice is None
        else {
            "lines": [
                {
                    "description": line.description,
                    "why": (line.details or {}).get("plan_change", {}).get("why", ""),
                    "amount": format_money(line.amount, currency),
                }
                for line in invoice.lines.order_by("position")
            ],
            "subtotal": format_money(invoice.subtotal, currency),
            "tax": format_money(invoice.tax, currency),
            "total": format_money(invoice.total, currency),
            "credits_applied": format_money(invoice.credits_applied, currency),
            "amount_due": format_money(invoice.amount_due, currency),
        },
        "credits_expired": format_decimal(outcome.credits_expired),
        "credits_granted": format_decimal(outcome.credits_granted),
        "subscription_id": outcome.subscription.pk,
    }


def _summary(result: dict) -> str:
    if result["applies"] == "period_end":
        return (
            f"Change to {result['new']['plan']} scheduled for {format_instant(result['when'])} "
            "(the end of the current period)."
        )
    parts = [f"Changed to {result['new']['plan']} on {format_instant(result['when'])}."]
    if result["invoice"]:
        parts.append(f"Change invoice {result['invoice']['total']}.")
    parts += [f"Credit note {n['amount']} on {n['invoice']} ({n['refund_to']})." for n in result["credit_notes"]]
    return " ".join(parts)


def change_plan_view(model_admin, request, subscription: Subscription):
    """The form, the preview (``step=preview``) and the confirmation (``confirm=yes``) of a plan change."""
    data = request.POST if request.method == "POST" else None
    form = ChangePlanForm(data, subscription=subscription)
    preview = None
    if data is not None and form.is_valid():
        values = form.cleaned_data
        confirm = request.POST.get("confirm") == "yes"
        now = timezone.now()
        # The preview pins the instant it used, so the confirmation applies exactly what was shown.
        effective_at: datetime | None = values["effective_at"] or (None if confirm else now)
        try:
            result = subscription_change(
                subscription=subscription,
                plan=values["plan"],
                at=values["at"],
                effective_at=effective_at,
                pinned_version=values["pinned_version"],
                preview=not confirm,
                now=now,
                present=present,
            )
        except BillingError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            if confirm:
                model_admin.log_change(request, subscription, _summary(result))
                model_admin.message_user(request, _summary(result), messages.SUCCESS)
                target = result["subscription_id"]
                return HttpResponseRedirect(reverse("admin:customers_subscription_change", args=[target]))
            preview = result
            form = ChangePlanForm(
                {
                    "plan": values["plan"].pk,
                    "at": values["at"],
                    "effective_at": format_instant_input(effective_at) if effective_at else "",
                    "pinned_version": values["pinned_version"].pk if values["pinned_version"] else "",
                },
                subscription=subscription,
            )
            form.is_valid()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Change the plan of subscription #{subscription.pk}",
        "subscription": subscription,
        "form": form,
        "preview": preview,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/customers/subscription/change_plan.html", context)


def format_instant_input(value: datetime) -> str:
    """An instant as the admin's date-time field reads it back (UTC, to the second)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def cancel_scheduled_change_view(model_admin, request, subscription: Subscription):
    """A confirmation page, then ``subscription_change_cancel``."""
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            subscription_change_cancel(subscription=subscription, now=timezone.now())
        except BillingError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
        else:
            text = f"Scheduled change to {subscription.scheduled_plan.name} canceled."
            model_admin.log_change(request, subscription, text)
            model_admin.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:customers_subscription_change", args=[subscription.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Cancel the scheduled plan change of subscription #{subscription.pk}",
        "subscription": subscription,
    }
    return TemplateResponse(request, "admin/customers/subscription/cancel_scheduled_change.html", context)
