from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; create them now so the groups get them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from backoffice.roles import roles_sync

    roles_sync(apps)


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=["Finance admin", "Finance viewer", "Support"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0001_initial"),
        ("customers", "0001_initial"),
        ("metering", "0001_initial"),
        ("wallets", "0001_initial"),
        ("invoicing", "0006_billingrun"),
        ("django_celery_beat", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
