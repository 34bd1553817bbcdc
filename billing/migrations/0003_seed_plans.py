from django.conf import settings
from django.db import migrations


def seed(apps, schema_editor):
    from billing.plans import PRICE_SETTINGS, seed_plans

    Plan = apps.get_model("billing", "Plan")
    seed_plans(Plan, {slug: getattr(settings, name, "") for slug, name in PRICE_SETTINGS.items()})


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_stripe_events_and_sync_fields")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
