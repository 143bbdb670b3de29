from __future__ import annotations

import sys


def main() -> None:
    from codex_orch.cli import entry

    sys.exit(entry())


if __name__ == "__main__":
    main()
