// Loupe UI behaviour. Pages work without this file; it adds the live tail on the trace list,
// span selection without a reload, and keyboard navigation of the span tree. Text from traces
// is only ever set with textContent, and fragments come from this server, already escaped.
"use strict";

function liveTail() {
  const table = document.getElementById("traces");
  const live = document.getElementById("live");
  if (!table || !live) return;
  const body = table.tBodies[0];
  const params = new URLSearchParams({ limit: "20" });
  if (table.dataset.project) params.set("project", table.dataset.project);
  if (table.dataset.q) params.set("q", table.dataset.q);
  const fmtMs = (ms) => ms >= 60000 ? (ms / 60000).toFixed(1) + " min" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : Math.round(ms) + " ms";
  const fmtCost = (c) => !c ? "–" : c < 0.01 ? "$" + c.toFixed(5) : "$" + c.toFixed(3);
  const cell = (tr, text, cls) => { const td = tr.insertCell(); if (cls) td.className = cls; td.textContent = text; return td; };
  async function poll() {
    if (!live.checked || document.hidden) return;
    let res;
    try { res = await fetch("/api/v1/traces?" + params, { headers: { accept: "application/json" } }); } catch { return; }
    if (!res.ok) return;
    const data = await res.json();
    const seen = new Set(Array.from(body.rows, (r) => r.dataset.traceId));
    const fresh = data.traces.filter((t) => !seen.has(t.trace_id)).reverse();
    for (const t of fresh) {
      const tr = body.insertRow(0);
      tr.dataset.traceId = t.trace_id;
      tr.className = "new";
      cell(tr, new Date(t.start_time_ms).toISOString().slice(0, 19).replace("T", " "), "time");
      const a = document.createElement("a");
      a.href = "/traces/" + encodeURIComponent(t.trace_id);
      a.textContent = t.name || "(unnamed)";
      tr.insertCell().appendChild(a);
      const badge = document.createElement("span");
      badge.className = "badge status-" + String(t.status).toLowerCase();
      badge.textContent = t.status;
      tr.insertCell().appendChild(badge);
      cell(tr, fmtMs(t.duration_ms), "num");
      cell(tr, String(t.total_tokens), "num");
      cell(tr, fmtCost(t.cost_usd), "num");
      cell(tr, "", "model");
      const tags = tr.insertCell();
      for (const [k, v] of Object.entries(t.tags || {})) {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.textContent = k + "=" + (typeof v === "string" ? v : JSON.stringify(v));
        tags.appendChild(chip);
      }
    }
    const empty = document.querySelector("p.empty");
    if (fresh.length && empty) empty.remove();
  }
  setInterval(poll, 3000);
}

function spanTree() {
  const tree = document.getElementById("span-tree");
  const pane = document.getElementById("span-detail");
  if (!tree || !pane) return;
  const traceId = tree.dataset.traceId;
  const items = () => Array.from(tree.querySelectorAll("li[role=treeitem]")).filter((li) => li.offsetParent !== null);
  let current = tree.querySelector("li[aria-selected=true]") || tree.querySelector("li[role=treeitem]");
  for (const li of tree.querySelectorAll("li[role=treeitem]")) li.tabIndex = -1;
  if (current) current.tabIndex = 0;

  async function select(li, focus) {
    if (!li) return;
    for (const other of tree.querySelectorAll("li[aria-selected=true]")) other.setAttribute("aria-selected", "false");
    li.setAttribute("aria-selected", "true");
    if (current) current.tabIndex = -1;
    current = li;
    li.tabIndex = 0;
    if (focus) li.focus();
    const id = li.dataset.spanId;
    history.replaceState(null, "", "/traces/" + traceId + "?span=" + id);
    const res = await fetch("/traces/" + encodeURIComponent(traceId) + "/spans/" + encodeURIComponent(id));
    if (res.ok && current === li) pane.innerHTML = await res.text();
  }
  function toggle(li, open) {
    if (!li.hasAttribute("aria-expanded")) return false;
    const now = li.getAttribute("aria-expanded") === "true";
    const next = open === undefined ? !now : open;
    li.setAttribute("aria-expanded", String(next));
    return now !== next;
  }
  tree.addEventListener("click", (e) => {
    const li = e.target.closest("li[role=treeitem]");
    if (!li) return;
    if (e.target.closest(".twisty")) { toggle(li); e.preventDefault(); return; }
    if (e.target.closest("a.span-link") && !(e.ctrlKey || e.metaKey || e.shiftKey)) {
      e.preventDefault();
      select(li, true);
    }
  });
  tree.addEventListener("keydown", (e) => {
    const li = e.target.closest("li[role=treeitem]");
    if (!li) return;
    const list = items();
    const i = list.indexOf(li);
    switch (e.key) {
      case "ArrowDown": select(list[i + 1], true); break;
      case "ArrowUp": select(list[i - 1], true); break;
      case "ArrowRight": if (!toggle(li, true)) select(list[i + 1], true); break;
      case "ArrowLeft": if (!toggle(li, false)) select(li.parentElement.closest("li[role=treeitem]"), true); break;
      case "Home": select(list[0], true); break;
      case "End": select(list[list.length - 1], true); break;
      case "Enter": case " ": toggle(li); break;
      default: return;
    }
    e.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => { liveTail(); spanTree(); });
