"""`executor: temporal`: a run as a Temporal workflow, each task attempt an activity on `codex-orch worker`s.

Imported only when a run names this executor or `codex-orch worker` starts: the plain CLI never loads
temporalio (docs/scale-out.md).
"""
