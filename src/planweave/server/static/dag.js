// The plan DAG as SVG.
//
// Layout: the tasks that share a parent are laid out in layers from left to right, a task's layer
// being the longest dependency path to it among its siblings. A plan task that has planned a
// sub-plan becomes a group: a box with the plan task's own node as its header and its sub-plan
// laid out (the same way, recursively) indented below it. Edges are cubic paths from a
// dependency's right side to the dependent's left side.
//
// The view patches the SVG in place (nodes are keyed by task id), so a live update only changes
// attributes: a running node keeps pulsing, a new sub-plan appears where its plan task is.

import { s, truncate } from "./dom.js";

export const NODE_W = 208;
export const NODE_H = 54;
const COL_GAP = 56;
const ROW_GAP = 18;
const PAD = 12;
const INDENT = 20;
const HEADER_GAP = 18;
const MARGIN = 16;
const MIN_SCALE = 0.72;
const LANE_H = 8;

const KIND_LABEL = { execute: "execute", plan: "plan", tool: "tool", compose: "compose" };

/**
 * Lay tasks out. Pure: tasks in, geometry out.
 *
 * Returns {nodes: Map(id -> {x, y, w, h}), groups: Map(id -> {x, y, w, h}),
 *          edges: [{from, to, d}], width, height}.
 */
export function layoutDag(tasks) {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const order = new Map(tasks.map((t, i) => [t.id, i]));
  const parentOf = (t) => (t.parent && byId.has(t.parent) && t.parent !== t.id ? t.parent : null);
  const children = new Map();
  for (const t of tasks) {
    const p = parentOf(t);
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(t.id);
  }
  // The sibling (child of `container`) that `id` is, or sits inside; null if none.
  const siblingIn = (id, container) => {
    const seen = new Set();
    let cur = id;
    while (cur !== null && cur !== undefined && byId.has(cur) && !seen.has(cur)) {
      seen.add(cur);
      const p = parentOf(byId.get(cur));
      if (p === container) return cur;
      cur = p;
    }
    return null;
  };

  const size = new Map(); // id -> {w, h}: the node, or the whole group box
  const rel = new Map(); // id -> {x, y} relative to its container's content origin
  const contentSize = new Map(); // container id -> {w, h}
  const lanesRel = new Map(); // "container|from>to" -> [{x, y, w}] relative to the container
  const origin = new Map(); // container id -> its content origin {x, y}

  function layoutContainer(container, guard) {
    const ids = children.get(container) || [];
    for (const id of ids) measure(id, guard);
    const rank = new Map();
    const deps = new Map(
      ids.map((id) => {
        const list = [];
        for (const d of byId.get(id).depends_on || []) {
          const sib = siblingIn(d, container);
          if (sib !== null && sib !== id && !list.includes(sib)) list.push(sib);
        }
        return [id, list];
      }),
    );
    const visiting = new Set();
    const rankOf = (id) => {
      if (rank.has(id)) return rank.get(id);
      if (visiting.has(id)) return 0; // a cycle: the server never makes one, but stay finite
      visiting.add(id);
      let r = 0;
      for (const d of deps.get(id)) r = Math.max(r, rankOf(d) + 1);
      visiting.delete(id);
      rank.set(id, r);
      return r;
    };
    const columns = [];
    for (const id of ids) {
      const r = rankOf(id);
      (columns[r] ||= []).push(id);
    }
    // An edge that skips layers gets a thin lane in each layer it crosses, so it runs between
    // nodes instead of behind them.
    const chains = [];
    for (const id of ids) {
      for (const d of deps.get(id)) {
        if (rank.get(id) - rank.get(d) <= 1) continue;
        const chain = [];
        let prev = d;
        for (let r = rank.get(d) + 1; r < rank.get(id); r++) {
          const lane = `\u0000${container}|${d}>${id}|${r}`;
          size.set(lane, { w: 0, h: LANE_H });
          deps.set(lane, [prev]);
          order.set(lane, order.get(id));
          (columns[r] ||= []).push(lane);
          chain.push({ lane, column: r });
          prev = lane;
        }
        chains.push({ key: `${d}>${id}`, chain });
      }
    }
    // Order each column by the mean row of its dependencies (fewer crossings), then by age.
    const rowOf = new Map();
    columns.forEach((col, c) => {
      if (!col) return;
      if (c > 0) {
        const key = (id) => {
          const rows = deps.get(id).map((d) => rowOf.get(d)).filter((v) => v !== undefined);
          return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
        };
        col.sort((a, b) => key(a) - key(b) || order.get(a) - order.get(b));
      }
      col.forEach((id, row) => rowOf.set(id, row));
    });
    let x = 0;
    let height = 0;
    const colHeights = [];
    const colWidths = [];
    for (const col of columns) {
      if (!col) {
        colHeights.push(0);
        colWidths.push(0);
        continue;
      }
      let h = 0;
      let w = 0;
      for (const id of col) {
        h += size.get(id).h;
        w = Math.max(w, size.get(id).w);
      }
      h += ROW_GAP * (col.length - 1);
      colHeights.push(h);
      colWidths.push(w);
      height = Math.max(height, h);
    }
    columns.forEach((col, c) => {
      if (!col) return;
      let y = (height - colHeights[c]) / 2;
      for (const id of col) {
        rel.set(id, { x, y });
        y += size.get(id).h + ROW_GAP;
      }
      x += colWidths[c] + COL_GAP;
    });
    const width = Math.max(0, x - COL_GAP);
    contentSize.set(container, { w: width, h: height });
    for (const { key, chain } of chains) {
      lanesRel.set(
        `${container}|${key}`,
        chain.map(({ lane, column }) => ({ ...rel.get(lane), w: colWidths[column] })),
      );
    }
  }

  function measure(id, guard) {
    if (size.has(id)) return;
    if (guard.has(id)) {
      size.set(id, { w: NODE_W, h: NODE_H });
      return;
    }
    const kids = children.get(id);
    if (!kids || kids.length === 0) {
      size.set(id, { w: NODE_W, h: NODE_H });
      return;
    }
    const inner = new Set(guard).add(id);
    layoutContainer(id, inner);
    const content = contentSize.get(id);
    size.set(id, {
      w: Math.max(NODE_W, INDENT + content.w) + 2 * PAD,
      h: PAD + NODE_H + HEADER_GAP + content.h + PAD,
    });
  }

  layoutContainer(null, new Set());

  const nodes = new Map();
  const groups = new Map();
  function place(container, ox, oy) {
    origin.set(container, { x: ox, y: oy });
    for (const id of children.get(container) || []) {
      const r = rel.get(id);
      const x = ox + r.x;
      const y = oy + r.y;
      const sz = size.get(id);
      if ((children.get(id) || []).length > 0) {
        groups.set(id, { x, y, w: sz.w, h: sz.h });
        nodes.set(id, { x: x + PAD, y: y + PAD, w: NODE_W, h: NODE_H });
        place(id, x + PAD + INDENT, y + PAD + NODE_H + HEADER_GAP);
      } else {
        nodes.set(id, { x, y, w: NODE_W, h: NODE_H });
      }
    }
  }
  place(null, MARGIN, MARGIN);

  const edges = [];
  for (const t of tasks) {
    const to = nodes.get(t.id);
    if (!to) continue;
    for (const dep of t.depends_on || []) {
      const fromNode = nodes.get(dep);
      if (!fromNode) continue;
      const fromBox = groups.get(dep) || fromNode;
      const toBox = groups.get(t.id) || to;
      const x1 = fromBox.x + fromBox.w;
      const y1 = fromNode.y + NODE_H / 2;
      const x2 = toBox.x - 2;
      const y2 = to.y + NODE_H / 2;
      const container = parentOf(t);
      const sib = siblingIn(dep, container);
      const lanes = lanesRel.get(`${container}|${sib}>${t.id}`) || [];
      const o = origin.get(container) || { x: 0, y: 0 };
      let d = `M${x1},${y1}`;
      let px = x1;
      let py = y1;
      for (const lane of lanes) {
        const lx = o.x + lane.x;
        const ly = o.y + lane.y + LANE_H / 2;
        d += ` ${curve(px, py, lx, ly)} L${lx + lane.w},${ly}`;
        px = lx + lane.w;
        py = ly;
      }
      d += ` ${curve(px, py, x2, y2)}`;
      edges.push({ from: dep, to: t.id, d });
    }
  }

  const top = contentSize.get(null) || { w: 0, h: 0 };
  return { nodes, groups, edges, width: top.w + 2 * MARGIN, height: top.h + 2 * MARGIN };
}

function curve(x1, y1, x2, y2) {
  const dx = Math.max(16, Math.abs(x2 - x1) / 2);
  return `C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}

/** A live SVG drawing of a job's tasks. */
export class DagView {
  constructor({ onSelect = () => {} } = {}) {
    this.onSelect = onSelect;
    this.selected = null;
    this.svg = s("svg", { class: "dag", role: "group", "aria-label": "Plan graph", "data-testid": "dag" });
    const defs = s(
      "defs",
      {},
      s(
        "marker",
        { id: "dag-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "dag-arrow" }),
      ),
      s(
        "marker",
        { id: "dag-arrow-done", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "dag-arrow done" }),
      ),
    );
    this.groupLayer = s("g", { class: "dag-groups" });
    this.edgeLayer = s("g", { class: "dag-edges" });
    this.nodeLayer = s("g", { class: "dag-nodes" });
    this.svg.append(defs, this.groupLayer, this.edgeLayer, this.nodeLayer);
    this.nodes = new Map();
    this.groups = new Map();
  }

  /** Shrink a wide graph to the available width (down to MIN_SCALE; past that it scrolls). */
  fit(width = this.availableWidth) {
    if (width) this.availableWidth = width;
    if (!this.size) return;
    const avail = this.availableWidth || this.size.w;
    const scale = Math.min(1, Math.max(MIN_SCALE, avail / this.size.w));
    this.scale = scale;
    this.svg.setAttribute("width", String(Math.floor(this.size.w * scale)));
    this.svg.setAttribute("height", String(Math.floor(this.size.h * scale)));
  }

  select(id) {
    this.selected = id;
    for (const [key, entry] of this.nodes) entry.g.classList.toggle("selected", key === id);
  }

  update(tasks) {
    const layout = layoutDag(tasks);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    this.size = { w: Math.max(layout.width, 200), h: Math.max(layout.height, 80) };
    this.svg.setAttribute("viewBox", `0 0 ${this.size.w} ${this.size.h}`);
    this.fit();

    for (const [id, entry] of this.groups) {
      if (!layout.groups.has(id)) {
        entry.remove();
        this.groups.delete(id);
      }
    }
    for (const [id, box] of layout.groups) {
      let rect = this.groups.get(id);
      if (!rect) {
        rect = s("rect", { class: "dag-group", rx: "12", "data-group": id });
        this.groupLayer.appendChild(rect);
        this.groups.set(id, rect);
      }
      rect.setAttribute("x", String(box.x));
      rect.setAttribute("y", String(box.y));
      rect.setAttribute("width", String(box.w));
      rect.setAttribute("height", String(box.h));
      rect.setAttribute("data-status", byId.get(id)?.status || "");
    }

    while (this.edgeLayer.firstChild) this.edgeLayer.removeChild(this.edgeLayer.firstChild);
    for (const edge of layout.edges) {
      const done = byId.get(edge.from)?.status === "succeeded";
      this.edgeLayer.appendChild(
        s("path", {
          d: edge.d,
          class: done ? "dag-edge done" : "dag-edge",
          "marker-end": done ? "url(#dag-arrow-done)" : "url(#dag-arrow)",
          "data-from": edge.from,
          "data-to": edge.to,
        }),
      );
    }

    for (const [id, entry] of this.nodes) {
      if (!layout.nodes.has(id)) {
        entry.g.remove();
        this.nodes.delete(id);
      }
    }
    for (const task of tasks) {
      const box = layout.nodes.get(task.id);
      if (!box) continue;
      let entry = this.nodes.get(task.id);
      if (!entry) {
        entry = this.createNode(task.id);
        this.nodes.set(task.id, entry);
        this.nodeLayer.appendChild(entry.g);
      }
      this.patchNode(entry, task, box);
    }
    this.select(this.selected);
  }

  createNode(id) {
    const box = s("rect", { class: "node-box", width: String(NODE_W), height: String(NODE_H), rx: "8" });
    const stripe = s("rect", { class: "node-stripe", x: "0", y: "0", width: "6", height: String(NODE_H), rx: "3" });
    const title = s("text", { class: "node-title", x: "16", y: "22" });
    const sub = s("text", { class: "node-sub", x: "16", y: "40" });
    const dot = s("circle", { class: "node-dot", cx: String(NODE_W - 16), cy: "17", r: "5" });
    const glyph = s("text", { class: "node-glyph", x: String(NODE_W - 16), y: "41", "text-anchor": "middle" });
    const tip = s("title");
    const g = s("g", { class: "node", tabindex: "0", role: "button", "data-task-id": id }, tip, box, stripe, title, sub, dot, glyph);
    const choose = () => this.onSelect(id);
    g.addEventListener("click", choose);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        choose();
      }
    });
    return { g, title, sub, glyph, tip };
  }

  patchNode(entry, task, box) {
    const { g } = entry;
    g.setAttribute("transform", `translate(${box.x},${box.y})`);
    const status = task.status || "pending";
    if (g.getAttribute("data-status") !== status) g.setAttribute("data-status", status);
    g.setAttribute("data-kind", task.kind || "execute");
    g.setAttribute("aria-label", `${task.id}: ${status}`);
    entry.title.textContent = truncate(task.id, 24);
    const kind = KIND_LABEL[task.kind] || task.kind || "task";
    const label = task.tool ? `${kind} · ${task.tool}` : task.goal ? `${kind} · ${task.goal}` : kind;
    entry.sub.textContent = truncate(label, 31);
    const attempts = task.attempt > 1 ? `×${task.attempt}` : "";
    entry.glyph.textContent = attempts;
    entry.tip.textContent = `${task.id} (${kind}, ${status})\n${task.goal || ""}${task.error ? `\nerror: ${task.error}` : ""}`;
  }
}
