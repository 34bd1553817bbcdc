from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_trace_retrieval"),
    ]

    operations = [
        migrations.AddField(
            model_name="trace",
            name="timings",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="trace",
            name="prompt_version",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
