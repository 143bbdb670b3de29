import { api, badge, el, listen, say, seconds, since, usd, when } from "./common.js";

function render(runs) {
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

api("/api/runs").then((data) => render(data.runs)).catch((error) => say(error.message, "error"));
listen("/api/stream/runs", { runs: render });
