"""A run written straight to disk with the run store, no agent involved: big plans for the dashboard's
tests and bench/dashboard.py (a 1,000-task run is seconds of agents otherwise)."""

from __future__ import annotations

import random
from pathlib import Path

from codex_orch.layout import Layout
from codex_orch.state import RunStore

ROLES = ("implementer", "tester", "reviewer", "navigator")


def synthetic_run(root: Path, run_id: str, tasks: int, layers: int, seed: int = 7) -> RunStore:
    """A run of `tasks` tasks `T0001`… in `layers` layers, each waiting for 1-3 tasks of the layer
    before, roles drawn at random (seeded); returned open, for the caller to record on and close."""
    rng = random.Random(seed)
    per_layer = max(1, tasks // layers)
    specs: list[dict[str, object]] = []
    for i in range(tasks):
        layer = min(i // per_layer, layers - 1)
        earlier = [str(s["id"]) for s in specs[max(0, (layer - 1) * per_layer) : layer * per_layer]] if layer else []
        deps = rng.sample(earlier, k=min(len(earlier), rng.randint(1, 3))) if earlier else []
        specs.append({"id": f"T{i + 1:04d}", "role": rng.choice(ROLES), "blocked_by": deps})
    folder = Layout(root).run_dir(run_id)
    folder.mkdir(parents=True)
    return RunStore.create(folder, {"run_id": run_id, "goal": f"a {tasks}-task plan"}, specs)
