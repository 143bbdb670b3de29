"""`init`: the .orchestrator/ folder."""

from __future__ import annotations

import click

from codex_orch.cli.common import repo


@click.command()
@click.option("--force", is_flag=True, help="Rewrite the default config, schemas and prompts.")
def init(force: bool) -> None:
    """Create .orchestrator/ (config, schemas, prompts) in this repository."""
    from codex_orch.layout import Layout
    from codex_orch.scaffold import init as do_init

    result = do_init(Layout(repo()), force=force)
    for rel in result.written:
        click.echo(f"wrote .orchestrator/{rel}")
    if result.kept and not result.written:
        click.echo(".orchestrator/ is already initialised (use --force to rewrite the defaults)")
    if result.gitignore_updated:
        click.echo("added .orchestrator/runs/ and .orchestrator/worktrees/ to .gitignore")
