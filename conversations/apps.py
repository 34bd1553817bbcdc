from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # bots (below us) starts evaluation runs; the runner needs the answer pipeline, which is ours.
        from bots.evaluation.gate import register_run_starter

        from .pipeline.config import connect_signals
        from .tasks import eval_run_queue

        register_run_starter(eval_run_queue)
        # A bot's turn configuration is remembered per process; its rows' writes forget it.
        connect_signals()

        from tenants.events import event_emitted

        from .handoff_bus import close_inboxes_of_suspended_tenant
        from .suspension import close_sockets_of_suspended_tenant

        event_emitted.connect(close_inboxes_of_suspended_tenant, dispatch_uid="handoff-close-suspended")
        event_emitted.connect(close_sockets_of_suspended_tenant, dispatch_uid="sockets-close-suspended")
