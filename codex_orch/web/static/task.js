import { api, badge, el, listen, say, seconds, usd } from "./common.js";

const parts = location.pathname.split("/");
const runId = decodeURIComponent(parts[2]);
const taskId = decodeURIComponent(parts[4]);
const base = `/api/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(taskId)}`;
const seen = new Set(); // attempt:line:kind of every event shown
const lists = new Map(); // attempt number -> its events' tbody

function keyOf(event) {
  return `${event.attempt}:${event.line}:${event.kind}:${event.text}`;
}

function clock(at) {
  return at ? new Date(at * 1000).toISOString().slice(11, 23) : "--:--:--.---";
}

function eventRow(event) {
  const output = event.output
    ? el("details", {}, el("summary", { text: "output" }), el("pre", { text: event.output }))
    : null;
  const code = event.kind === "command" && event.exit_code !== null ? ` (exit ${event.exit_code})` : "";
  return el("tr", { dataset: { kind: event.kind, failed: String(event.kind === "command" && ![null, 0].includes(event.exit_code)) } },
    el("td", { class: "mono muted", text: clock(event.at) }),
    el("td", { class: "kind", text: event.kind }),
    el("td", { class: "text" }, el("span", { class: event.kind === "command" ? "mono" : "", text: event.text + code }), output),
  );
}

function addEvents(events) {
  for (const event of events) {
    const key = keyOf(event);
    if (seen.has(key)) continue;
    const body = lists.get(event.attempt);
    if (!body) { load(); return; } // a new attempt: draw it
    seen.add(key);
    body.append(eventRow(event));
  }
}

function usage(u) {
  return `in ${u.input_tokens} (cached ${u.cached_input_tokens}) / out ${u.output_tokens} (reasoning ${u.reasoning_output_tokens})`;
}

function attempt(a) {
  const body = el("tbody");
  lists.set(a.n, body);
  for (const event of a.events) {
    seen.add(keyOf(event));
    body.append(eventRow(event));
  }
  const outcome = a.failure ? `${a.failure}: ${a.failure_message}` : (a.ended_at ? "ok" : "running");
  return el("section", { class: "attempt", dataset: { attempt: a.n } },
    el("h3", { text: `Attempt ${a.n} — ${a.agent}${a.model ? ` (${a.model})` : ""}${a.fallback_from ? `, after ${a.fallback_from}` : ""}` }),
    el("div", { class: "facts" },
      el("span", {}, el("b", { text: "outcome " }), outcome),
      el("span", {}, el("b", { text: "time " }), seconds(a.duration)),
      el("span", {}, el("b", { text: "tokens " }), usage(a.usage)),
      el("span", {}, el("b", { text: "cost " }), usd(a.cost_usd)),
      el("span", {}, el("b", { text: "thread " }), el("code", { text: a.thread_id || "-" })),
    ),
    a.validation && a.validation.trim() !== "valid"
      ? el("details", { open: Boolean(a.failure) }, el("summary", { text: "validation" }), el("pre", { class: "validation", text: a.validation }))
      : null,
    a.events_left_out ? el("p", { class: "muted", text: `${a.events_left_out} earlier events not shown (codex-orch logs lists them all)` }) : null,
    el("table", { class: "events" }, el("thead", {}, el("tr", {}, el("th", { text: "time" }), el("th", { text: "kind" }), el("th", { text: "what" }))), body),
  );
}

function outcome(run) {
  if (run.ok) return "passed";
  if (run.error) return `could not run: ${run.error}`;
  return run.timed_out ? "timed out" : `exit ${run.exit_code}`;
}

// Its worktree's setup, each gate run (on which attempt's work) and the fix rounds; a failed one's log tail.
function checks(task) {
  const rows = [];
  const setup = task.setup;
  if (setup) {
    const why = setup.ok ? "ok" : `failed${setup.failed && setup.failed.why ? `: ${setup.failed.why}` : ""}`;
    rows.push(el("tr", { dataset: { check: "setup", ok: String(Boolean(setup.ok)) } },
      el("td", { text: "setup" }), el("td", { text: "-" }), el("td", { text: why }),
      el("td", { text: seconds(setup.seconds) }), el("td", { class: "mono", text: setup.log || "-" })));
  }
  for (const run of task.gates) {
    rows.push(el("tr", { dataset: { gate: run.name, attempt: run.n, ok: String(Boolean(run.ok)) } },
      el("td", { text: `gate ${run.name}` }), el("td", { text: run.n }), el("td", { class: "outcome", text: outcome(run) }),
      el("td", { text: seconds(run.seconds) }), el("td", { class: "mono", text: run.log || "-" })));
  }
  const tails = [setup && { name: "setup", tail: setup.tail }, ...task.gates.map((run) => ({ name: `gate ${run.name}, attempt ${run.n}`, tail: run.tail }))]
    .filter((item) => item && item.tail)
    .map((item) => el("details", { open: true, class: "tail" }, el("summary", { text: `${item.name}: the end of its output` }), el("pre", { text: item.tail })));
  return [
    el("table", { class: "checks" },
      el("thead", {}, el("tr", {}, ...["check", "attempt", "outcome", "time", "log"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)),
    task.fix_rounds ? el("p", { id: "fix-rounds", text: `Fix rounds: ${task.fix_rounds} (a failing gate handed back to the agent's thread)` }) : null,
    ...tails,
  ];
}

function diff(d) {
  if (!d) return el("p", { class: "muted", text: "No commit (yet, or no changes)." });
  if (d.error) return el("p", { class: "muted", text: `git show ${d.commit}: ${d.error}` });
  const lines = d.patch.split("\n").map((line) => {
    const kind = line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del" : line.startsWith("@@") ? "hunk" : "";
    return el("span", { class: kind, text: line || " " });
  });
  return el("div", {},
    d.truncated ? el("p", { class: "muted", text: "The diff is cut: it is longer than the dashboard shows." }) : null,
    el("pre", { class: "diff", id: "patch" }, lines));
}

async function load() {
  const task = await api(base);
  document.title = `codex-orch — ${task.id}`;
  const runLink = document.getElementById("run-link");
  runLink.href = `/runs/${encodeURIComponent(runId)}`;
  runLink.textContent = `run ${runId}`;
  document.getElementById("title").textContent = `${task.id} (${task.role})`;
  document.getElementById("status").replaceChildren(badge(task.status));
  document.getElementById("facts").replaceChildren(
    el("span", {}, el("b", { text: "waits for " }), task.blocked_by.join(", ") || "-"),
    el("span", {}, el("b", { text: "time " }), seconds(task.duration)),
    el("span", {}, el("b", { text: "tokens " }), usage(task.usage)),
    el("span", {}, el("b", { text: "cost " }), usd(task.cost_usd)),
    el("span", {}, el("b", { text: "commit " }), el("code", { text: task.commit || "-" })),
    el("span", {}, el("b", { text: "branch " }), el("code", { text: task.branch || "-" })),
  );
  const result = task.result && typeof task.result === "object" ? task.result : {};
  document.getElementById("summary").textContent = typeof result.summary === "string" ? result.summary : "";
  document.getElementById("error").replaceChildren(
    task.error ? el("pre", { class: "error", text: `${task.error.kind}: ${task.error.message}` }) : "",
  );
  seen.clear();
  lists.clear();
  document.getElementById("attempts").replaceChildren(...task.attempts.map(attempt));
  document.getElementById("checks-section").hidden = !task.setup && !task.gates.length;
  document.getElementById("checks").replaceChildren(...checks(task));
  document.getElementById("diff").replaceChildren(diff(task.diff));
  document.body.dataset.status = task.status;
  document.body.dataset.ready = "true";
}

let again = null;
load()
  .then(() => listen(`${base}/stream`, {
    events: addEvents,
    task: () => { clearTimeout(again); again = setTimeout(load, 100); },
    gone: (data) => say(data.error, "error"),
  }))
  .catch((error) => say(error.message, "error"));
