// The plan drawn as plain SVG: a column per depth, tasks grouped by role inside it. Big groups start
// collapsed into one box counting its tasks by status (click or Enter on its title toggles it), so a
// 1,000-task plan stays readable; the wheel zooms around the pointer, a drag pans, search highlights.
// Every node is a link to its task page, reachable with Tab; a focused node is brought into view.

const NS = "http://www.w3.org/2000/svg";
const W = 170, H = 30, GAP_X = 70, GAP_Y = 8, HEAD = 22, TOP = 26;
const COLLAPSE_OVER = 300;   // tasks in the plan before its groups start collapsed
const BIG_GROUP = 8;         // members of a group collapsed then (a 1,000-task plan opens as ~100 boxes)
const ALL_EDGES_UNDER = 3000; // more edges than this: only a focused node's are drawn

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

export class Dag {
  constructor(root, tasks, runId) {
    this.root = root;
    this.runId = runId;
    this.collapsed = new Set();
    this.view = null;
    this.matches = [];
    this.matchAt = -1;
    this.bindInput();
    this.setTasks(tasks);
  }

  setTasks(tasks) {
    this.tasks = tasks;
    this.byId = new Map(tasks.map((t) => [t.id, t]));
    this.collapsed.clear();
    if (tasks.length > COLLAPSE_OVER) {
      for (const [key, members] of this.groups()) if (members.length > BIG_GROUP) this.collapsed.add(key);
    }
    performance.mark("dag-start");
    this.render();
    performance.mark("dag-render");
    this.fit();
    performance.mark("dag-fit");
  }

  groups() {
    const groups = new Map();
    const sorted = [...this.tasks].sort((a, b) => a.depth - b.depth || a.role.localeCompare(b.role));
    for (const task of sorted) {
      const key = `${task.depth}|${task.role}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(task);
    }
    return groups;
  }

  render() {
    const frame = document.createDocumentFragment();
    const edgeLayer = svg("g", { class: "edges" });
    const nodeLayer = svg("g", { class: "nodes" });
    this.nodes = new Map();
    this.summaries = new Map();
    this.where = new Map(); // task id -> [x, y] of its node or of its group's box
    const columnY = new Map();
    let height = 0;
    for (const [key, members] of this.groups()) {
      const depth = members[0].depth;
      const x = depth * (W + GAP_X) + 10;
      if (!columnY.has(depth)) {
        columnY.set(depth, TOP);
        const label = svg("g", { class: "depth" });
        label.append(svg("text", { x, y: 14 }, `depth ${depth}`));
        nodeLayer.append(label);
      }
      let y = columnY.get(depth);
      const open = !this.collapsed.has(key);
      const head = svg("g", { class: "group", tabindex: 0, role: "button", "aria-expanded": open, "data-group": key });
      head.append(svg("text", { x, y: y + 14 }, `${open ? "▾" : "▸"} ${members[0].role} (${members.length})`));
      head.addEventListener("click", () => this.toggle(key));
      head.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.toggle(key); } });
      nodeLayer.append(head);
      y += HEAD;
      if (open) {
        for (const task of members) {
          nodeLayer.append(this.node(task, x, y));
          this.where.set(task.id, [x, y]);
          y += H + GAP_Y;
        }
      } else {
        const box = svg("g", { class: "node summary", "data-group": key });
        box.append(svg("rect", { x, y, width: W, height: H }));
        const label = svg("text", { x: x + 8, y: y + 19 }, "");
        box.append(label);
        this.summaries.set(key, { label, members });
        this.countGroup(key);
        nodeLayer.append(box);
        for (const task of members) this.where.set(task.id, [x, y]);
        y += H + GAP_Y;
      }
      columnY.set(depth, y + GAP_Y);
      height = Math.max(height, y);
    }
    this.edges = this.drawEdges(edgeLayer);
    frame.append(edgeLayer, nodeLayer);
    this.root.replaceChildren(frame);
    const depthCount = Math.max(0, ...this.tasks.map((t) => t.depth)) + 1;
    this.size = [depthCount * (W + GAP_X) + 20, height + 20];
  }

  node(task, x, y) {
    const href = `/runs/${encodeURIComponent(this.runId)}/tasks/${encodeURIComponent(task.id)}`;
    const link = svg("a", { class: "node", href, "data-task": task.id, "data-status": task.status });
    link.setAttribute("aria-label", `${task.id}, ${task.role}, ${task.status}`);
    link.append(svg("rect", { x, y, width: W, height: H }));
    link.append(svg("circle", { class: "dot", cx: x + 12, cy: y + H / 2, r: 6 }));
    link.append(svg("text", { x: x + 24, y: y + 19 }, task.id.length > 20 ? `${task.id.slice(0, 19)}…` : task.id));
    link.append(svg("title", {}, `${task.id} (${task.role}): ${task.status}`));
    link.addEventListener("focus", () => { this.hot(task.id); this.show(task.id); });
    link.addEventListener("mouseenter", () => this.hot(task.id));
    this.nodes.set(task.id, link);
    return link;
  }

  drawEdges(layer) {
    const seen = new Map();
    for (const task of this.tasks) {
      for (const dep of task.blocked_by) {
        const from = this.where.get(dep), to = this.where.get(task.id);
        if (!from || !to) continue;
        const key = `${from}|${to}`;
        if (!seen.has(key)) seen.set(key, { from, to, ids: new Set() });
        seen.get(key).ids.add(task.id).add(dep);
      }
    }
    const all = seen.size < ALL_EDGES_UNDER;
    const edges = [];
    for (const { from, to, ids } of seen.values()) {
      const [x1, y1] = [from[0] + W, from[1] + H / 2], [x2, y2] = [to[0], to[1] + H / 2];
      const mid = (x1 + x2) / 2;
      const path = svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` });
      edges.push({ path, ids });
      if (all) layer.append(path);
    }
    this.edgeLayer = layer;
    this.allEdges = all;
    return edges;
  }

  hot(id) {
    for (const edge of this.edges) {
      const on = edge.ids.has(id);
      edge.path.classList.toggle("hot", on);
      if (!this.allEdges) { if (on) this.edgeLayer.append(edge.path); else edge.path.remove(); }
    }
  }

  countGroup(key) {
    const { label, members } = this.summaries.get(key);
    const counts = {};
    for (const t of members) counts[t.status] = (counts[t.status] || 0) + 1;
    label.textContent = Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ");
  }

  setStatus(id, status) {
    const task = this.byId.get(id);
    if (!task) return;
    task.status = status;
    const node = this.nodes.get(id);
    if (node) {
      node.dataset.status = status;
      node.setAttribute("aria-label", `${task.id}, ${task.role}, ${status}`);
    } else {
      this.countGroup(`${task.depth}|${task.role}`);
    }
  }

  toggle(key) {
    if (this.collapsed.has(key)) this.collapsed.delete(key); else this.collapsed.add(key);
    const view = this.view;
    this.render();
    this.setView(view);
    this.root.querySelector(`[data-group="${CSS.escape(key)}"]`)?.focus();
  }

  expandAll() {
    this.collapsed.clear();
    this.render();
    this.fit();
  }

  // --- zoom and pan -------------------------------------------------------------------------
  setView(view) {
    this.view = view;
    this.root.setAttribute("viewBox", view.map((v) => v.toFixed(1)).join(" "));
  }

  // Readable first: at least half size, the left of a wide plan shown (drag or zoom out for the
  // rest). `whole` (the Fit button): the whole plan in the box, however small.
  fit(whole = false) {
    const [w, h] = this.size;
    const width = this.root.clientWidth || 1000;
    let scale = Math.max(0.5, Math.min(1, width / w));
    const height = Math.min(Math.max(h * scale, 200), window.innerHeight * 0.7);
    this.root.style.height = `${Math.round(height)}px`;
    if (whole) scale = Math.min(1, width / w, height / h);
    this.setView([0, 0, width / scale, height / scale]);
  }

  zoom(factor, cx, cy) {
    const [x, y, w, h] = this.view;
    const px = cx ?? x + w / 2, py = cy ?? y + h / 2;
    const nw = Math.min(Math.max(w * factor, 200), 40000), nh = (nw / w) * h;
    this.setView([px - ((px - x) * nw) / w, py - ((py - y) * nh) / h, nw, nh]);
  }

  show(id) {
    const at = this.where.get(id);
    if (!at) return;
    const [x, y, w, h] = this.view;
    if (at[0] >= x && at[0] + W <= x + w && at[1] >= y && at[1] + H <= y + h) return;
    this.setView([at[0] + W / 2 - w / 2, at[1] + H / 2 - h / 2, w, h]);
  }

  point(event) {
    const box = this.root.getBoundingClientRect();
    const [x, y, w, h] = this.view;
    return [x + ((event.clientX - box.left) / box.width) * w, y + ((event.clientY - box.top) / box.height) * h];
  }

  bindInput() {
    this.root.addEventListener("wheel", (event) => {
      event.preventDefault();
      const [px, py] = this.point(event);
      this.zoom(event.deltaY > 0 ? 1.15 : 1 / 1.15, px, py);
    }, { passive: false });
    let drag = null;
    this.root.addEventListener("pointerdown", (event) => {
      if (event.target.closest("a, .group")) return;
      drag = { x: event.clientX, y: event.clientY, view: this.view };
      this.root.setPointerCapture(event.pointerId);
    });
    this.root.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const box = this.root.getBoundingClientRect();
      const [x, y, w, h] = drag.view;
      this.setView([x - ((event.clientX - drag.x) / box.width) * w, y - ((event.clientY - drag.y) / box.height) * h, w, h]);
    });
    this.root.addEventListener("pointerup", () => { drag = null; });
    document.getElementById("zoom-in")?.addEventListener("click", () => this.zoom(1 / 1.4));
    document.getElementById("zoom-out")?.addEventListener("click", () => this.zoom(1.4));
    document.getElementById("fit")?.addEventListener("click", () => this.fit(true));
    document.getElementById("expand")?.addEventListener("click", () => this.expandAll());
    const search = document.getElementById("search");
    search?.addEventListener("input", () => this.search(search.value));
    search?.addEventListener("keydown", (event) => { if (event.key === "Enter") this.next(); });
  }

  // --- search ---------------------------------------------------------------------------------
  search(query) {
    const q = query.trim().toLowerCase();
    this.matches = q ? this.tasks.filter((t) => `${t.id} ${t.role} ${t.status}`.toLowerCase().includes(q)) : [];
    this.matchAt = -1;
    const closed = new Set(this.matches.map((t) => `${t.depth}|${t.role}`).filter((k) => this.collapsed.has(k)));
    if (closed.size && this.matches.length <= 200) {
      for (const key of closed) this.collapsed.delete(key);
      const view = this.view;
      this.render();
      this.setView(view);
    }
    const hit = new Set(this.matches.map((t) => t.id));
    for (const [id, node] of this.nodes) {
      node.classList.toggle("match", hit.has(id));
      node.classList.toggle("dim", q !== "" && !hit.has(id));
    }
    if (this.matches.length) this.show(this.matches[0].id);
    const info = document.getElementById("search-info");
    if (info) info.textContent = q ? `${this.matches.length} match${this.matches.length === 1 ? "" : "es"} (Enter: next)` : "";
  }

  next() {
    if (!this.matches.length) return;
    this.matchAt = (this.matchAt + 1) % this.matches.length;
    const id = this.matches[this.matchAt].id;
    this.show(id);
    this.nodes.get(id)?.focus();
  }
}
