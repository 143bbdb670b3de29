"""`init`: the .orchestrator/ folder."""

from __future__ import annotations

import click

from codex_orch.cli.common import epilog, repo, say, self_command


@click.command(
    epilog=epilog(
        ["codex-orch init", "codex-orch init --force   # back to the defaults; your files are kept as *.bak-<time>"],
        {0: "written (or already there)", 2: "not in a git repository"},
    )
)
@click.option(
    "--force", is_flag=True, help="Rewrite the default config, schemas and prompts (customised files are backed up)."
)
def init(force: bool) -> None:
    """Create .orchestrator/ (config, schemas, prompts)."""
    from codex_orch.layout import Layout
    from codex_orch.scaffold import GITIGNORE_LINES
    from codex_orch.scaffold import init as do_init

    result = do_init(Layout(repo()), force=force)
    backups = dict(result.backups)
    lines = []
    for rel in result.written:
        saved = f" (your version is kept in .orchestrator/{backups[rel]})" if rel in backups else ""
        lines.append(f"wrote .orchestrator/{rel}{saved}")
    if result.kept and not result.written:
        lines.append(".orchestrator/ is already initialised (use --force to rewrite the defaults)")
    if result.gitignore_updated:
        lines.append(f"made sure .gitignore holds {', '.join(GITIGNORE_LINES)}")
    say(lines)
    me = self_command()
    say(
        [
            "next: write a plan (docs/usage.md shows the format), or let the navigator write one:",
            f"  {me} plan --goal 'what you want done'",
            f"  {me} plan --check plan.json && {me} run --plan-file plan.json",
        ],
        err=True,
    )
