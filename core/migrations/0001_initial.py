import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

from core.migration_utils import adopt_or_create


class Migration(migrations.Migration):
    """API keys and the API audit log, formerly in the ``billing_project`` app: the tables are adopted when an
    installation has them (``core.migration_utils``), created otherwise."""

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100)),
                        ("prefix", models.CharField(db_index=True, help_text="The first characters of the key, to recognise it.", max_length=16)),
                        ("hashed_key", models.CharField(editable=False, max_length=64, unique=True)),
                        ("scopes", django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[("ingest", "Ingest events"), ("read", "Read"), ("write", "Write")], max_length=16), default=list, size=None)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked", models.BooleanField(default=False)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"verbose_name": "API key", "ordering": ["-created_at"]},
                ),
                migrations.CreateModel(
                    name="ApiAuditEntry",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("method", models.CharField(max_length=8)),
                        ("path", models.CharField(max_length=500)),
                        ("status_code", models.PositiveSmallIntegerField()),
                        ("object_ref", models.CharField(blank=True, max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("api_key", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="audit_entries", to="core.apikey")),
                    ],
                    options={"verbose_name": "API audit entry", "verbose_name_plural": "API audit log", "ordering": ["-created_at"]},
                ),
            ],
        ),
        migrations.RunPython(*adopt_or_create("core", "ApiKey", "billing_project", "billing_project_apikey")),
        migrations.RunPython(*adopt_or_create("core", "ApiAuditEntry", "billing_project", "billing_project_apiauditentry")),
    ]
