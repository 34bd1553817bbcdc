from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0008_handoff_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="handoffsettings",
            name="on_unanswered",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="handoffsettings",
            name="unanswered_count",
            field=models.PositiveSmallIntegerField(default=2),
        ),
        migrations.AddField(
            model_name="handoffsettings",
            name="on_thumbs_down",
            field=models.BooleanField(default=False),
        ),
    ]
