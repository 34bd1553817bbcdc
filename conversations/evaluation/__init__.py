"""Running bots' evaluation sets through the answer pipeline (the cases, runs and the publishing
gate are in bots/evaluation/, below this app; see its docstring for the layout)."""
