"""Per-bot evaluation sets and the publishing gate (issue 15).

Where each part lives, so imports keep running one way (conversations -> bots -> knowledge):
- bots/models.py: EvalCase, EvalRun, EvalResult, beside the bots and prompt versions they judge;
- bots/evaluation/cases.py: writing cases, importing and exporting them (CSV, JSON);
- bots/evaluation/selectors.py: reads: cases with their flags, runs, the baseline, starter cases;
- bots/evaluation/gate.py: starting runs and the publishing gate (publish a prompt, change the
  knowledge bases), which bots' views call;
- conversations/evaluation/: the runner, which answers each case through the answer pipeline
  (that lives in conversations, above bots) and scores it. It registers itself with gate.py
  from ConversationsConfig.ready(), as billing's usage sources do, so bots never imports it.
"""
