import { api, badge, el, listen, say, seconds, since, usd, when } from "./common.js";

let runs = [];
let jobs = { jobs: null, error: null };

function renderRuns() {
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(
    ...runs.map((run) =>
      el("tr", { dataset: { run: run.run_id } },
        el("td", {}, el("a", { href: `/runs/${encodeURIComponent(run.run_id)}`, text: run.run_id })),
        el("td", {}, badge(run.status), run.driven ? el("span", { class: "muted", text: " (driven)" }) : null),
        el("td", { text: when(run.created_at) }),
        el("td", { text: seconds(since(run.created_at, run.ended_at)) }),
        el("td", { text: `${run.done ?? 0} / ${run.tasks}` }),
        el("td", { text: run.failed }),
        el("td", { text: usd(run.cost_usd) }),
        el("td", { class: "mono", text: run.branch || "-" }),
      ),
    ),
  );
  if (!runs.length) say("No runs yet: start one with codex-orch run --plan-file PLAN.");
}

// The job service's queue (only where it has a database); a job's run, once started, is `job-<id>`.
function renderJobs() {
  const section = document.getElementById("jobs-section");
  section.hidden = jobs.jobs === null && !jobs.error;
  document.getElementById("jobs-message").textContent = jobs.error || (jobs.jobs && !jobs.jobs.length ? "No jobs." : "");
  const byId = new Map(runs.map((run) => [run.run_id, run]));
  document.querySelector("#jobs tbody").replaceChildren(
    ...(jobs.jobs || []).map((job) => {
      const run = byId.get(job.run_id);
      const note = job.question || job.error;
      return el("tr", { dataset: { job: job.id, status: job.status } },
        el("td", { class: "mono", text: job.id }),
        el("td", {}, badge(job.status)),
        el("td", { class: "what" }, el("span", { class: "muted", text: `${job.kind} ` }), job.head,
          note ? el("div", { class: "muted", text: typeof note === "string" ? note : JSON.stringify(note) }) : null),
        el("td", { class: "mono", text: job.branch || "-" }),
        el("td", { text: when(job.created_at) }),
        el("td", { text: seconds(since(job.created_at, job.finished_at)) }),
        el("td", { text: run ? `${run.done ?? 0} / ${run.tasks}` : "-" }),
        el("td", { text: usd(run ? run.cost_usd : null) }),
        el("td", {}, run ? el("a", { href: `/runs/${encodeURIComponent(job.run_id)}`, text: job.run_id })
          : el("span", { class: "muted", text: job.run_id })),
      );
    }),
  );
}

function onRuns(list) {
  runs = list;
  renderRuns();
  renderJobs();
}

function onJobs(data) {
  jobs = data;
  renderJobs();
  document.body.dataset.jobs = "ready";
}

api("/api/runs").then((data) => onRuns(data.runs)).catch((error) => say(error.message, "error"));
listen("/api/stream/runs", { runs: onRuns, jobs: onJobs });
