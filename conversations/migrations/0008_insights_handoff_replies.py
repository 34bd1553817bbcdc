from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0007_handoff_leads"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailyrollup",
            name="handoffs_answered",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="dailyrollup",
            name="first_human_reply_s",
            field=models.FloatField(default=0),
        ),
    ]
