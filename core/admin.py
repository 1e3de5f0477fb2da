import json
from collections.abc import Callable, Iterable

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
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


def planner_row_estimate(queryset) -> int:
    """PostgreSQL's estimate of how many rows ``queryset`` returns (``EXPLAIN``: nothing is read). Unlike
    ``pg_class.reltuples`` it is sound on a table never analyzed, and it estimates a filtered query too."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A list's count that never reads a large table whole.

    Rows are counted exactly up to ``exact_up_to`` (``COUNT(*)`` over a ``LIMIT``-ed subquery: at most that many
    rows are read); past it, the count is PostgreSQL's estimate for the query (:func:`planner_row_estimate`), and
    the list says "about". A full ``COUNT(*)`` over millions of events took seconds; worse, the estimate alone
    (``reltuples``) reads 0 on a table never analyzed, and the admin then rendered every row on one page (it
    shows the whole query when the count fits one page: ``exact_up_to`` must stay above the page size).
    """

    exact_up_to = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        counted = queryset.order_by()[: self.exact_up_to + 1].count()
        if counted <= self.exact_up_to:
            return counted
        return max(planner_row_estimate(queryset), counted)

    @cached_property
    def estimated(self) -> bool:
        return self.count > self.exact_up_to


def currency_filter(field_path: str, in_use: Callable[[], Iterable[str]]) -> type[admin.SimpleListFilter]:
    """A list filter offering only the currencies in use (``in_use()``), not every currency the code knows.

    Its URL parameter is Django's own (``currency__exact``), so existing links keep working.
    """

    class CurrencyInUseFilter(admin.SimpleListFilter):
        title = "currency"
        parameter_name = f"{field_path}__exact"

        def lookups(self, request, model_admin):
            return [(code, code) for code in sorted({c for c in in_use() if c})]

        def queryset(self, request, queryset):
            return queryset.filter(**{field_path: self.value()}) if self.value() else queryset

    return CurrencyInUseFilter


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


def registered_task_choices() -> list[tuple[str, str]]:
    """Every Celery task the project registers, as the schedule form's "Task (registered)" choices.

    A web process starts no worker, so nothing else imports the apps' ``tasks`` modules; Celery's autodiscovery is
    forced here each time the form is built, and the names are read from the project's own app (django-celery-beat
    reads ``current_app`` once and keeps the first answer, which was empty when it came first).
    """
    from celery import current_app as app  # the project's app (billing_project/__init__.py makes it current)

    app.autodiscover_tasks(force=True)
    names = sorted(name for name in app.tasks if not name.startswith("celery."))
    return [("", "---------"), *((name, name) for name in names)]


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's schedule list, with its actions behind the change permission.

    Its actions (enable, disable, toggle, run now) declare no permission, so Django offers them to anyone who
    may view the list: a Finance viewer could run the billing task. Every admin action here needs a change (or
    a more specific) permission; an action that names none is removed for users without change.
    The form lists the registered tasks (:func:`registered_task_choices`).
    """

    def get_form(self, request, obj=None, **kwargs):
        base = super().get_form(request, obj, **kwargs)

        class PeriodicTaskForm(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                if "regtask" in self.fields:
                    self.fields["regtask"].widget = forms.Select(choices=registered_task_choices())

        return PeriodicTaskForm

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name, (func, _name, _description) in list(actions.items()):
                if not getattr(func, "allowed_permissions", None):
                    del actions[name]
        return actions


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
