import { act, api, badge, el, listen, say, seconds, usd } from "./common.js";
import { Dag } from "./dag.js";

const runId = decodeURIComponent(location.pathname.split("/")[2]);
const base = `/api/runs/${encodeURIComponent(runId)}`;
let run = null;
let dag = null;
const rows = new Map();

function facts() {
  const counts = Object.entries(run.counts).map(([s, n]) => `${n} ${s}`).join(", ");
  document.getElementById("status").replaceChildren(badge(run.status));
  document.getElementById("facts").replaceChildren(
    el("span", {}, el("b", { text: "tasks " }), `${run.tasks.length} (${counts})`),
    el("span", {}, el("b", { text: "cost " }), usd(run.cost_usd)),
    el("span", {}, el("b", { text: "tokens " }), `${run.usage.input_tokens} in / ${run.usage.output_tokens} out`),
    el("span", {}, el("b", { text: "branch " }), el("code", { text: run.branch || "one per task" })),
    el("span", {}, el("b", { text: "created " }), run.created_at || "-"),
  );
}

function row(task) {
  const link = el("a", { href: `/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(task.id)}`, text: task.id });
  return el("tr", { dataset: { task: task.id, status: task.status } },
    el("td", {}, link),
    el("td", { text: task.role }),
    el("td", {}, badge(task.status)),
    el("td", { text: task.attempts }),
    el("td", { text: task.blocked_by.join(", ") || "-" }),
    el("td", { text: seconds(task.duration) }),
    el("td", { text: usd(task.cost_usd) }),
    el("td", { text: task.summary || (task.error ? `${task.error.kind}: ${task.error.message}` : "") }),
  );
}

// The table lists at most TABLE_ROWS tasks (those the search matches): a thousand rows would cost the
// page seconds of layout and help nobody; the graph shows them all.
const TABLE_ROWS = 200;
function renderTable() {
  const body = document.querySelector("#tasks tbody");
  const q = document.getElementById("search").value.trim().toLowerCase();
  const shown = q ? run.tasks.filter((t) => `${t.id} ${t.role} ${t.status}`.toLowerCase().includes(q)) : run.tasks;
  rows.clear();
  body.replaceChildren(...shown.slice(0, TABLE_ROWS).map((task) => { const r = row(task); rows.set(task.id, r); return r; }));
  if (shown.length > TABLE_ROWS) {
    const more = `… and ${shown.length - TABLE_ROWS} more: search (above the graph) to narrow the list`;
    body.append(el("tr", {}, el("td", { colspan: 8, class: "muted", text: more })));
  }
}
let typing = null;
document.getElementById("search").addEventListener("input", () => {
  clearTimeout(typing);
  typing = setTimeout(renderTable, 150);
});

async function load() {
  performance.mark("load");
  run = await api(base);
  performance.mark("fetched");
  document.getElementById("run-id").textContent = run.run_id;
  document.getElementById("title").textContent = `Run ${run.run_id}`;
  document.getElementById("goal").textContent = run.goal || "";
  facts();
  renderTable();
  performance.mark("table");
  if (dag) dag.setTasks(run.tasks); else dag = new Dag(document.getElementById("graph"), run.tasks, runId);
  document.body.dataset.ready = "true";
  document.body.dataset.readyAt = String(Math.round(performance.now())); // ms since navigation (bench/)
}

// A change names the tasks it touched; their node and row follow, the rest stays as it is.
function applyTasks(tasks, summary) {
  const byId = new Map(run.tasks.map((t) => [t.id, t]));
  if (tasks.some((t) => !byId.has(t.id))) return load(); // a task joined the run: redraw it all
  for (const live of tasks) {
    const task = byId.get(live.id);
    if (task.status === live.status && task.attempts === live.attempts) continue;
    if (task.status !== live.status && live.status !== "running") refreshTask(task.id);
    task.status = live.status;
    task.attempts = live.attempts;
    task.error = live.error_kind ? { kind: live.error_kind, message: task.error?.message || "" } : null;
    dag.setStatus(live.id, live.status);
    const old = rows.get(live.id);
    if (old) {
      const fresh = row(task);
      old.replaceWith(fresh);
      rows.set(live.id, fresh);
    }
  }
  run.status = summary.status;
  run.counts = summary.counts;
  facts();
  document.body.dataset.seq = String(summary.seq);
}

// A task that ended: its time, cost and summary come from the API (the stream carries only its state).
const pending = new Set();
let timer = null;
function refreshTask(id) {
  pending.add(id);
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    const fresh = await api(base).catch(() => null);
    if (!fresh) return;
    const byId = new Map(fresh.tasks.map((t) => [t.id, t]));
    for (const tid of pending) {
      const i = run.tasks.findIndex((t) => t.id === tid);
      const f = byId.get(tid);
      if (i >= 0 && f) {
        f.status = run.tasks[i].status;
        run.tasks[i] = f;
        const old = rows.get(tid);
        if (old) {
          const r = row(f);
          old.replaceWith(r);
          rows.set(tid, r);
        }
      }
    }
    pending.clear();
    run.cost_usd = fresh.cost_usd;
    run.usage = fresh.usage;
    facts();
  }, 300);
}

for (const name of ["cancel", "resume", "merge"]) {
  document.getElementById(name).addEventListener("click", () => act(runId, name));
}

load()
  .then(() => listen(`${base}/stream`, {
    hello: (data) => applyTasks(data.tasks, data),
    change: (data) => applyTasks(data.tasks, data),
  }))
  .catch((error) => say(error.message, "error"));
