from django.urls import path

from . import views

_BOTS = "t/<slug:tenant_slug>/bots/"
_BOT = _BOTS + "<int:bot_id>/"

urlpatterns = [
    path(_BOTS, views.bot_list, name="bot_list"),
    path(_BOTS + "keys/", views.credential_list, name="credential_list"),
    path(_BOTS + "keys/<int:providercredential_id>/delete/", views.credential_delete, name="credential_delete"),
    path(_BOT, views.bot_detail, name="bot_detail"),
    path(_BOT + "prompts/", views.prompt_list, name="prompt_list"),
    path(_BOT + "prompts/<int:promptversion_id>/", views.prompt_detail, name="prompt_detail"),
    path(_BOT + "prompts/<int:promptversion_id>/publish/", views.prompt_publish, name="prompt_publish"),
]
