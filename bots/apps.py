from django.apps import AppConfig


class BotsConfig(AppConfig):
    name = "bots"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.usage_sources import register_usage_source

        from .selectors import bot_count_for_tenant

        # billing's `bots` quota counts through this, not through our models.
        register_usage_source("bots", bot_count_for_tenant)
