"""Moving a model to another app without losing its rows (used by migrations).

The platform's rows once lived in an app named ``billing_project``. A migration that creates such a model in its
new app adopts the old table when an installation still has it (renaming it and moving its content type, so
permissions and admin history follow, and adding any column the old app's later migrations would have added), and
creates the table on a fresh database.
"""

from __future__ import annotations


def adopt_or_create(app_label: str, model_name: str, legacy_app: str, legacy_table: str):
    """``(forwards, backwards)`` for ``migrations.RunPython`` after a state-only ``CreateModel``."""

    def forwards(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
        if legacy_table not in tables:
            schema_editor.create_model(model)
            return
        schema_editor.alter_db_table(model, legacy_table, model._meta.db_table)
        with connection.cursor() as cursor:
            columns = {c.name for c in connection.introspection.get_table_description(cursor, model._meta.db_table)}
        for field in model._meta.local_fields:
            if field.column not in columns:  # added in the old app by a migration this installation never ran
                schema_editor.add_field(model, field)
        content_type = apps.get_model("contenttypes", "ContentType")
        content_type.objects.filter(app_label=app_label, model=model_name.lower()).delete()
        content_type.objects.filter(app_label=legacy_app, model=model_name.lower()).update(app_label=app_label)

    def backwards(apps, schema_editor):
        schema_editor.delete_model(apps.get_model(app_label, model_name))

    return forwards, backwards
