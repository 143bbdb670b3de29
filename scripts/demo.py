"""The README's first command: the real codex CLI carries out a real 3-task plan, offline.

The MODEL IS SCRIPTED. codex_orch.testing.scripted_model is a local server on 127.0.0.1 that speaks the
OpenAI Responses API and replays canned tool calls and answers; it understands nothing. Everything
else is real: the codex CLI (tools/codex, pinned), its sandbox running the shell commands and
patches, codex-orch's worktrees, validation, commits and state. No API key and no network needed.

    bash scripts/demo.sh                # sets up, then runs this (in .demo/<time>/)
    .venv/bin/python scripts/demo.py --dir DIR

It ends with the commands to look at, merge and clean the run, each runnable as printed from any
shell: codex-orch is in .venv/bin, which is not on the PATH of someone who only ran the demo.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from codex_orch.testing.scripted_model import ScriptedModelServer, codex_config

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / "tools" / "codex" / "node_modules" / ".bin" / "codex"

NEXT = "   $ "  # the prefix of each next command, which tests/test_demo.py runs as printed
CALC = "def add(a, b):\n    return a + b\n"
TEST_PATCH = """*** Begin Patch
*** Add File: test_calc.py
+import unittest
+
+from calc import add, subtract
+
+
+class CalcTest(unittest.TestCase):
+    def test_add(self):
+        self.assertEqual(add(2, 3), 5)
+
+    def test_subtract(self):
+        self.assertEqual(subtract(5, 3), 2)
+
+
+if __name__ == "__main__":
+    unittest.main()
*** End Patch
"""

PLAN = {
    "goal": "Give calc.py a subtract function, with tests.",
    "assumptions": ["Python 3 is available", "tests use unittest"],
    "tasks": [
        {
            "role": "implementer",
            "prompt": "Add a subtract(a, b) function to calc.py.",
            "acceptance": "calc.subtract(5, 3) == 2",
            "blocked_by": [],
        },
        {
            "role": "tester",
            "prompt": "Write unit tests for add and subtract in test_calc.py and run them.",
            "acceptance": "python3 -m unittest passes",
            "blocked_by": ["T0001"],
        },
        {
            "role": "reviewer",
            "prompt": "Review the new function and its tests.",
            "acceptance": "no major findings",
            "blocked_by": ["T0002"],
        },
    ],
}

SCRIPT = {
    "rules": [
        {
            "match": "Add a subtract(a, b) function",
            "steps": [
                {"shell": "cat calc.py"},
                {"shell": "cat >> calc.py <<'EOF'\n\n\ndef subtract(a, b):\n    return a - b\nEOF"},
                {
                    "answer": {
                        "status": "done",
                        "summary": "Added subtract(a, b) to calc.py.",
                        "files_changed": ["calc.py"],
                        "decisions": [{"decision": "subtract mirrors add", "rationale": "same style, no checks"}],
                        "risks": [],
                        "next_tasks": [],
                    }
                },
            ],
        },
        {
            "match": "Write unit tests",
            "steps": [
                {"patch": TEST_PATCH},
                {"shell": "python3 -m unittest -q test_calc"},
                {
                    "answer": {
                        "status": "done",
                        "summary": "Added test_calc.py; both tests pass.",
                        "files_changed": ["test_calc.py"],
                        "decisions": [],
                        "risks": [],
                        "next_tasks": [],
                        "tests": [
                            {"command": "python3 -m unittest -q test_calc", "passed": True, "summary": "2 tests OK"}
                        ],
                    }
                },
            ],
        },
        {
            "match": "Review the new function",
            "steps": [
                {"shell": "git log --oneline -3 && cat calc.py"},
                {
                    "answer": {
                        "status": "approved",
                        "summary": "Small, correct and tested.",
                        "findings": [
                            {
                                "severity": "info",
                                "file": "calc.py",
                                "line": 5,
                                "message": "subtract has no type hints, like add",
                            }
                        ],
                        "risks": [],
                        "decisions": [],
                        "next_tasks": [],
                    }
                },
            ],
        },
    ],
}


def sh(cwd: Path, *argv: str) -> str:
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a 3-task plan with the real codex against a scripted model.")
    parser.add_argument("--dir", type=Path, help="where to make the demo repository (default: .demo/<time>/)")
    args = parser.parse_args(argv)
    if not CODEX.exists():
        print("codex is not installed: run bash scripts/setup.sh first", file=sys.stderr)
        return 2
    base = (args.dir or ROOT / ".demo" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    repo = base / "repo"
    repo.mkdir(parents=True)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "Demo User")
    sh(repo, "git", "config", "user.email", "demo@example.com")
    (repo / "calc.py").write_text(CALC)
    sh(repo, "git", "add", "calc.py")
    sh(repo, "git", "commit", "-q", "-m", "calc with add")
    (base / "plan.json").write_text(json.dumps(PLAN, indent=2))
    # the codex-orch of this venv, by its absolute path: what we print must work in a shell without it on PATH
    codex_orch = [str(Path(sys.executable).parent / "codex-orch")]

    print(f"== demo repository: {repo}")
    print("== the model is SCRIPTED (codex_orch.testing.scripted_model on 127.0.0.1): the codex CLI, its sandbox,")
    print("   git and codex-orch are real.\n")
    with ScriptedModelServer(SCRIPT) as server:
        subprocess.run([*codex_orch, "init"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
        config_path = repo / ".orchestrator" / "orchestrator.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["codex"].update({"command": str(CODEX), "home": "isolated", "config": codex_config(server.base_url)})
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        run = [*codex_orch, "run", "--plan-file", str(base / "plan.json"), "--run-id", "demo"]
        print(f"$ cd {shlex.quote(str(repo))} && {shlex.join(run)}")
        result = subprocess.run(run, cwd=repo)
        requests = len(server.requests)
    branch = json.loads((repo / ".orchestrator/runs/demo/state.json").read_text())["branch"]  # the run branch
    print(f"\n== the model server answered {requests} requests from codex")
    print(f"== commits on {branch}:")
    print(sh(repo, "git", "log", "--format=%h %s%n%(trailers:only,unfold)", f"main..{branch}"))
    print("== calc.py on the run branch:")
    print(sh(repo, "git", "show", f"{branch}:calc.py"))
    print(f"\n== run state: {repo / '.orchestrator/runs/demo/state.json'}")
    print(f"== next (codex-orch is {codex_orch[0]}; `source {Path(sys.executable).parent}/activate` puts it on PATH):")
    cd = f"cd {shlex.quote(str(repo))} && "
    print(f"{NEXT}{cd}{shlex.join([*codex_orch, 'status', '--run-id', 'demo'])}")
    print(f"{NEXT}{cd}{shlex.join([*codex_orch, 'merge', '--run-id', 'demo'])}   # or: git merge {branch}")
    print(f"{NEXT}{cd}{shlex.join([*codex_orch, 'clean', '--run-id', 'demo'])}   # after the merge")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
