from django.urls import path

from . import correction_views, editor_views, eval_views, handoff_views, views, widget_views

_BOTS = "t/<slug:tenant_slug>/bots/"
_BOT = _BOTS + "<int:bot_id>/"
_EVAL = _BOT + "evaluation/"
_CORRECTIONS = _BOT + "corrections/"

urlpatterns = [
    path(_BOTS, views.bot_list, name="bot_list"),
    path(_BOTS + "keys/", views.credential_list, name="credential_list"),
    path(_BOTS + "keys/<int:providercredential_id>/delete/", views.credential_delete, name="credential_delete"),
    path(_BOT, editor_views.bot_detail, name="bot_detail"),
    path(_BOT + "knowledge/", editor_views.bot_knowledge, name="bot_knowledge"),
    path(_BOT + "models/", editor_views.bot_models, name="bot_models"),
    path(_BOT + "models/keys/", editor_views.bot_key_add, name="bot_key_add"),
    path(_BOT + "models/keys/<int:providercredential_id>/delete/", editor_views.bot_key_delete, name="bot_key_delete"),
    path(_BOT + "policy/", editor_views.bot_policy, name="bot_policy"),
    path(_BOT + "handoff/", handoff_views.bot_handoff, name="bot_handoff"),
    path(_BOT + "widget/", widget_views.bot_widget, name="bot_widget"),
    path(_BOT + "widget/allow-origin/", widget_views.bot_widget_origin_allow, name="bot_widget_origin_allow"),
    path(_BOT + "prompts/", views.prompt_list, name="prompt_list"),
    path(_BOT + "prompts/compare/", views.prompt_compare, name="prompt_compare"),
    path(_BOT + "prompts/<int:promptversion_id>/", views.prompt_detail, name="prompt_detail"),
    path(_BOT + "prompts/<int:promptversion_id>/publish/", views.prompt_publish, name="prompt_publish"),
    path(_EVAL, eval_views.eval_page, name="eval_page"),
    path(_EVAL + "cases/<int:evalcase_id>/", eval_views.eval_case_edit, name="eval_case_edit"),
    path(_EVAL + "cases/<int:evalcase_id>/delete/", eval_views.eval_case_delete, name="eval_case_delete"),
    path(_EVAL + "starters/", eval_views.eval_starters, name="eval_starters"),
    path(_EVAL + "import/", eval_views.eval_import, name="eval_import"),
    path(_EVAL + "export/", eval_views.eval_export, name="eval_export"),
    path(_EVAL + "run/", eval_views.eval_run_start, name="eval_run_start"),
    path(_EVAL + "runs/<int:evalrun_id>/", eval_views.eval_run_detail, name="eval_run_detail"),
    path(_EVAL + "runs/<int:evalrun_id>/confirm/", eval_views.eval_run_confirm, name="eval_run_confirm"),
    path(_EVAL + "runs/<int:evalrun_id>/cancel/", eval_views.eval_run_cancel, name="eval_run_cancel"),
    path(_CORRECTIONS, correction_views.correction_list, name="correction_list"),
    path(_CORRECTIONS + "import/", correction_views.correction_import, name="correction_import"),
    path(_CORRECTIONS + "<int:correction_id>/", correction_views.correction_edit, name="correction_edit"),
    path(_CORRECTIONS + "<int:correction_id>/toggle/", correction_views.correction_toggle, name="correction_toggle"),
    path(_CORRECTIONS + "<int:correction_id>/delete/", correction_views.correction_remove, name="correction_delete"),
]
