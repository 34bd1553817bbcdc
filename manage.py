#!/usr/bin/env python
import contextlib
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from chatbot_saas.devrecord import explain_unreachable_services
    from chatbot_saas.tracing import setup_from_settings as setup_tracing_from_settings

    # With no DATABASE_URL/REDIS_URL and no `make run` to find, "connection refused" becomes one
    # line saying what to start; commands that need neither (help, check, collectstatic) still run.
    with explain_unreachable_services():
        # Commands that answer (`ask`) or run tasks eagerly are traced like the web and the worker.
        # A bad setting is left for Django to report (`help` still runs with one).
        with contextlib.suppress(ImproperlyConfigured):
            setup_tracing_from_settings("command")
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
