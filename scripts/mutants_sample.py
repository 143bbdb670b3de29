"""A uniform random sample of the mutants of some modules, for `mutmut run NAME...` (docs/testing.md).

Run from a folder where mutmut has made `mutants/` (a first `mutmut run` does, before its first mutant):

    python scripts/mutants_sample.py --seed 10 --size 700 codex_orch.git.repo codex_orch.engine.drive > sample.txt
    mutmut run --max-children 2 $(cat sample.txt)

A module whose mutants all run takes hours when every test reaches its functions; the killed share of a
uniform sample estimates the module's score, and every survivor in it is looked at like any other.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def mutant_names(module: str) -> list[str]:
    meta = Path("mutants", *module.split(".")).with_suffix(".py.meta")
    if not meta.is_file():
        raise SystemExit(f"{meta}: not found; run mutmut once in this folder first")
    return sorted(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("modules", nargs="+", help="dotted module names, as codex_orch.git.repo")
    args = parser.parse_args()
    names = [name for module in args.modules for name in mutant_names(module)]
    for name in sorted(random.Random(args.seed).sample(names, min(args.size, len(names)))):
        print(name)


if __name__ == "__main__":
    main()
