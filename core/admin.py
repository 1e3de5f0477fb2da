from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from .auth import api_key_create
from .errors import BillingError
from .models import ApiAuditEntry, ApiKey


def adopt(obj, saved) -> None:
    """Make the admin's instance ``obj`` the row a service stored (its id and every column), so that the rest of the
    change form (inlines, the log entry, the redirect) works on the stored row. The services do the writing
    (CONVENTIONS.md section 6: one write path); ``save_model`` calls one and adopts what it returns."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def errors_to_form(form, errors: dict[str, list[str]]) -> None:
    """Show a service's validation errors (``{field: [messages]}``) on an admin form, each next to its field when
    the form has it, else above the form. A field that already shows an error of its own gets no second one."""
    for field, messages in errors.items():
        target = field if field in form.fields else None
        if target is not None and target in form.errors:
            continue
        for message in messages:
            form.add_error(target, message)


def service_error_to_form(form, exc: BillingError) -> None:
    """:func:`errors_to_form` for a raised domain error (one field, or every field of a ``CatalogInvalid``)."""
    errors_to_form(form, getattr(exc, "errors", None) or {exc.field or "": [exc.message]})


class ReadOnlyAdminMixin:
    """For immutable records (ledger rows, audit rows): viewable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiKeyAddForm(forms.Form):
    name = forms.CharField(max_length=100, help_text='Who or what uses the key, e.g. "ingest service".')
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every scope.",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys. A new key is shown once, on the page that answers its creation (never in a message: messages
    travel in a cookie or the session), with ``Cache-Control: no-store``; only its hash is kept."""

    list_display = ("name", "prefix", "scopes_display", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    fields = ("name", "scopes", "prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scopes_display(self, obj):
        return ", ".join(obj.scopes)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyAddForm(request.POST or None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add API key",
            "form": form,
            **(extra_context or {}),
        }
        if request.method == "POST" and form.is_valid():
            key, raw = api_key_create(name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"] or None)
            self.log_addition(request, key, "Created")
            context.update(title="New API key", key=key, raw_key=raw)
        response = TemplateResponse(request, "admin/core/apikey/add.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        n = queryset.filter(revoked=False).update(revoked=True, revoked_at=timezone.now())
        for key in queryset:
            self.log_change(request, key, "Revoked")
        self.message_user(request, f"Revoked {n} key(s).")


@admin.register(ApiAuditEntry)
class ApiAuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False  # a large table: a search counts its matches only
    list_display = ("created_at", "api_key", "method", "path", "status_code", "object_ref")
    list_filter = ("method", "status_code")
    search_fields = ("path", "object_ref", "api_key__name")
    list_select_related = ("api_key",)


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's schedule list, with its actions behind the change permission.

    Its actions (enable, disable, toggle, run now) declare no permission, so Django offers them to anyone who
    may view the list: a Finance viewer could run the billing task. Every admin action here needs a change (or
    a more specific) permission; an action that names none is removed for users without change.
    """

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name, (func, _name, _description) in list(actions.items()):
                if not getattr(func, "allowed_permissions", None):
                    del actions[name]
        return actions


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
