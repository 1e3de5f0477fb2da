from django.contrib import admin, messages
from django.utils import timezone

from .auth import api_key_create
from .models import ApiAuditEntry, ApiKey


class ReadOnlyAdminMixin:
    """For immutable records (ledger rows, audit rows): viewable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "scopes_display", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    fields = ("name", "scopes", "prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scopes_display(self, obj):
        return ", ".join(obj.scopes)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(name=obj.name, scopes=obj.scopes or None)
        obj.pk = key.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"New API key (shown once, copy it now): {raw}",
            level=messages.WARNING,
        )

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
    list_display = ("created_at", "api_key", "method", "path", "status_code", "object_ref")
    list_filter = ("method", "status_code")
    search_fields = ("path", "object_ref", "api_key__name")
    list_select_related = ("api_key",)
