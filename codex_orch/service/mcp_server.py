"""The MCP server of the job service, built with the official SDK (`mcp`, MCPServer): ten tools over the
operations of service/jobs.py, each with an input and an output schema. A refused operation is an MCP
tool error (`isError`) carrying the same one line as the CLI.

`codex-orch mcp` serves it over stdio; `serve` at `/mcp` over streamable HTTP (behind its token).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from codex_orch import __version__
from codex_orch.errors import OrchError
from codex_orch.service.jobs import JobService

Status = Literal["pending", "running", "awaiting_input", "done", "failed", "cancelled"]
Finished = Literal["done", "failed", "cancelled"]

INSTRUCTIONS = (
    "codex-orch runs coding jobs in git worktrees of this repository and commits each job's work on a branch. "
    "enqueue_job queues one (a prompt, or a whole plan); get_job tells its status: pending, running, "
    "awaiting_input (the agent asks a question: answer with continue_job), done (its commit is on its branch), "
    "failed or cancelled."
)


class Job(BaseModel):
    id: int
    status: Status
    run_id: str = Field(description="The codex-orch run that executes it (codex-orch status --run-id …)")
    branch: str | None = Field(description="The branch that holds its work")
    commit: str | None = Field(description="The branch tip after the job")
    question: str | None = Field(description="What the agent asks (awaiting_input)")
    error: str | None
    created_at: float
    updated_at: float
    claims: int = Field(description="Times a worker claimed it (more than 1: resumed after a crash or a continue)")
    cancel_requested: bool
    request: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class JobList(BaseModel):
    jobs: list[Job]


class Deleted(BaseModel):
    deleted: int
    status: str
    run_id: str


class CleanupEntry(BaseModel):
    id: int
    status: str
    run_id: str
    kept: bool = Field(description="True: clean kept something (work not merged), so the job stays listed")
    reason: str | None = None
    clean: dict[str, Any] | None = None


class Cleanup(BaseModel):
    dry_run: bool
    jobs: list[CleanupEntry]


class Worktree(BaseModel):
    path: str
    job: int
    status: str
    dirty: bool = Field(description="Holds uncommitted changes")


class WorktreeList(BaseModel):
    worktrees: list[Worktree]


class CleanPlan(BaseModel):
    run_id: str | None = None
    items: list[dict[str, Any]] = Field(description="Each worktree, branch and ref: removed or kept, and why")


def build_mcp(root: Path) -> MCPServer:
    mcp: MCPServer = MCPServer("codex-orch", instructions=INSTRUCTIONS, version=__version__)

    async def call(operation: Callable[[JobService], Any]) -> Any:
        def run() -> Any:
            service = JobService(root)
            try:
                return operation(service)
            finally:
                service.close()

        try:
            return await anyio.to_thread.run_sync(run)
        except OrchError as exc:
            raise ToolError(str(exc)) from None

    @mcp.tool()
    async def enqueue_job(
        prompt: str | None = None,
        role: str | None = None,
        acceptance: str | None = None,
        context_files: list[str] | None = None,
        plan: dict[str, Any] | None = None,
        base_ref: str | None = None,
        branch: str | None = None,
        feature_id: str | None = None,
        push: Literal["never", "always"] | None = None,
        agent: str | None = None,
    ) -> Job:
        """Queue a job: a single task (prompt, optional role, acceptance, context_files) or a whole plan (the
        JSON of `codex-orch run --plan-file`). Its work is committed on `branch` (or feature/<feature_id>, or
        a branch of its own); push "always" pushes that branch to origin when the job is done."""
        given = {
            "prompt": prompt, "role": role, "acceptance": acceptance, "context_files": context_files, "plan": plan,
            "base_ref": base_ref, "branch": branch, "feature_id": feature_id, "push": push, "agent": agent,
        }  # fmt: skip
        request = {k: v for k, v in given.items() if v is not None}
        return Job(**await call(lambda s: s.add(request)))

    @mcp.tool()
    async def list_jobs(status: list[Status] | None = None) -> JobList:
        """The jobs, oldest first; only those of the given statuses when `status` is set."""
        return JobList(jobs=[Job(**j) for j in await call(lambda s: s.list_jobs(tuple(status or ())))])

    @mcp.tool()
    async def get_job(job_id: int) -> Job:
        """One job: status, branch, commit, the agent's question or the error, its request and result."""
        return Job(**await call(lambda s: s.show(job_id)))

    @mcp.tool()
    async def continue_job(job_id: int, prompt: str) -> Job:
        """Send a follow-up to a done or awaiting_input job: the same agent thread goes on, and the job
        runs again (pending, then running)."""
        return Job(**await call(lambda s: s.continue_job(job_id, prompt)))

    @mcp.tool()
    async def cancel_job(job_id: int) -> Job:
        """Cancel a pending, running or awaiting_input job (a running one stops within seconds)."""
        return Job(**await call(lambda s: s.cancel(job_id)))

    @mcp.tool()
    async def delete_job(job_id: int) -> Deleted:
        """Forget a pending or finished job. Refused for running and awaiting_input jobs."""
        return Deleted(**await call(lambda s: s.delete(job_id)))

    @mcp.tool()
    async def cleanup_jobs(
        status: list[Finished] | None = None, older_than_hours: float = 0, apply: bool = False
    ) -> Cleanup:
        """Finished jobs: their runs' worktrees and merged branches removed, the jobs forgotten; a job whose
        run holds work that is not merged is kept. A dry run unless apply is true."""
        statuses = tuple(status or ("done", "failed", "cancelled"))
        return Cleanup(**await call(lambda s: s.cleanup(statuses, older_than_hours, apply)))

    @mcp.tool()
    async def list_worktrees() -> WorktreeList:
        """The worktrees of the jobs' runs, with their job and whether they hold uncommitted changes."""
        return WorktreeList(worktrees=[Worktree(**w) for w in await call(lambda s: s.worktrees())])

    @mcp.tool()
    async def cleanup_worktrees(apply: bool = False) -> Cleanup:
        """The worktrees and merged branches of every finished job's run removed (unmerged work kept);
        a dry run unless apply is true. The jobs themselves are forgotten only when nothing was kept."""
        return Cleanup(**await call(lambda s: s.cleanup(("done", "failed", "cancelled"), 0, apply)))

    @mcp.tool()
    async def delete_worktree(job_id: int, force: bool = False) -> CleanPlan:
        """Remove one finished job's worktrees and merged branches (force: unmerged ones too)."""
        return CleanPlan(**await call(lambda s: s.delete_worktree(job_id, force)))

    return mcp
