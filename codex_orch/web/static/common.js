// What the pages share. Agent text is only ever set with textContent (el() has no way to set HTML).

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export async function api(path, options = {}) {
  const response = await fetch(path, { cache: "no-store", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// One EventSource per page; the browser reconnects it by itself. `live` shows whether it is open.
export function listen(url, handlers) {
  const source = new EventSource(url);
  const live = document.getElementById("live");
  source.onopen = () => { if (live) { live.dataset.state = "open"; live.textContent = "live"; } };
  source.onerror = () => { if (live) { live.dataset.state = "closed"; live.textContent = "reconnecting"; } };
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}

export function badge(status) {
  return el("span", { class: "badge", dataset: { status }, text: status });
}

export function seconds(value) {
  if (value === null || value === undefined) return "-";
  if (value < 60) return `${value.toFixed(1)} s`;
  const m = Math.floor(value / 60);
  return m < 60 ? `${m} min ${Math.round(value % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function since(start, end) {
  if (!start) return null;
  const stop = end ? Date.parse(end) : Date.now();
  return (stop - Date.parse(start)) / 1000;
}

export function usd(value) {
  return value === null || value === undefined ? "-" : `$${value.toFixed(4)}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

export function say(text, kind = "info") {
  const box = document.getElementById("message");
  if (!box) return;
  box.dataset.kind = kind;
  box.textContent = text;
}

// Actions need the token; it is asked once per tab and kept in sessionStorage.
export async function act(runId, name) {
  let token = sessionStorage.getItem("codex-orch-token");
  if (!token) {
    token = window.prompt(`The token for "${name}" (from the token file the dashboard printed):`) || "";
    if (!token) return;
    sessionStorage.setItem("codex-orch-token", token);
  }
  try {
    const result = await api(`/api/runs/${encodeURIComponent(runId)}/${name}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    say(`${name}: done ${JSON.stringify(result)}`);
  } catch (error) {
    if (error.status === 403) sessionStorage.removeItem("codex-orch-token");
    say(`${name}: ${error.message}`, "error");
  }
}
