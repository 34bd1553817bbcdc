from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_membership_agent"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="on_duty",
            field=models.BooleanField(default=False),
        ),
    ]
