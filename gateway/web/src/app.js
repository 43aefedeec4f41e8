// The dashboard: plain DOM code over the node's HTTP API (the same endpoints hivectl uses),
// live through the SSE event feed (/api/events, read with fetch so credentials go in headers).
"use strict";

const state = { view: "overview", charts: {}, submitted: null, refreshTimer: null, feed: null, lastEventId: null,
  taskStatus: new Map() };  // task id -> the latest status the feed told (a task can move before its POST answers)

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "-").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const cls = (v) => `status-${String(v ?? "").replace(/[^a-z_]/gi, "")}`;

function authHeaders() {
  const h = {};
  const token = sessionStorage.getItem("hub.token");
  const key = sessionStorage.getItem("hub.apiKey");
  if (token) h["Authorization"] = `Bearer ${token}`;
  if (key) h["X-API-Key"] = key;
  return h;
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: authHeaders() };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (res.status === 401) showLogin();
  return { status: res.status, ok: res.ok, data: body && body.data, error: body && body.error };
}

function showLogin() {
  $("#login").hidden = false;
  document.querySelectorAll(".view").forEach((v) => (v.hidden = true));
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  sessionStorage.removeItem("hub.token");
  sessionStorage.removeItem("hub.apiKey");
  if (form.get("api_key")) {
    sessionStorage.setItem("hub.apiKey", form.get("api_key"));
  } else {
    const r = await api("/api/auth/login", { method: "POST", body: { username: form.get("username"), password: form.get("password") } });
    if (!r.ok) { $("#login-error").textContent = r.error ? r.error.message : `HTTP ${r.status}`; return; }
    sessionStorage.setItem("hub.token", r.data.token);
  }
  const check = await api("/api/hive/status");
  if (!check.ok) { $("#login-error").textContent = check.error ? check.error.message : `HTTP ${check.status}`; return; }
  $("#login").hidden = true;
  $("#logout").hidden = false;
  startFeed();
  show(state.view);
}

function rows(table, items, render, onClick) {
  const body = $(`${table} tbody`);
  body.innerHTML = items.map(render).join("");
  if (onClick) [...body.rows].forEach((row, i) => row.addEventListener("click", () => onClick(items[i])));
}

async function loadOverview() {
  const [status, nodes, health, alerts] = await Promise.all([
    api("/api/hive/status"), api("/api/cluster/nodes"), api("/health?detailed=true"), api("/api/monitoring/alerts")]);
  if (status.ok) {
    const s = status.data;
    const card = (label, value) => `<div class="card">${esc(label)}<b>${esc(value)}</b></div>`;
    $("#summary").innerHTML = card("nodes", nodes.ok ? nodes.data.nodes.length : "?") + card("agents", s.agents.total) +
      card("running", s.tasks.running) + card("queued", Object.values(s.queue_depth).reduce((a, b) => a + b, 0)) +
      card("tasks/s (1 min)", Number(s.throughput.tasks_per_second).toFixed(1)) + card("p95 ms (10 s)", s.latency ? s.latency.p95_ms : "-");
  }
  if (nodes.ok) rows("#nodes", nodes.data.nodes, (n) => `<tr><td>${esc(n.name)}</td><td class="${cls(n.status)}">${esc(n.status)}</td><td>${esc(n.role)}</td>` +
    `<td>${esc(n.http_address)}</td><td>${esc(n.agents)}</td><td>${esc(n.running_tasks)}</td><td>${esc(n.queued_tasks)}</td>` +
    `<td>${Number(n.cpu_percent).toFixed(1)}</td><td>${n.self ? "self" : esc(n.last_heartbeat_age_ms) + " ms"}</td></tr>`);
  if (health.data) {
    const h = health.data;
    $("#health").innerHTML = `<span class="${cls(h.status)}">${esc(h.status)}</span> — ` +
      Object.entries(h.components || {}).map(([k, c]) => `${esc(k)}: <span class="${cls(c.status)}">${esc(c.status)}</span>`).join(", ");
  }
  if (alerts.ok) {
    const items = alerts.data.active.map((a) => ({ ...a, s: "firing" })).concat(alerts.data.resolved.slice(0, 5).map((a) => ({ ...a, s: "resolved" })));
    rows("#alerts", items, (a) => `<tr><td class="${cls(a.s)}">${esc(a.s)}</td><td>${esc(a.severity)}</td><td>${esc(a.name)}</td><td class="wrap">${esc(a.message)}</td><td>${esc(a.since)}</td></tr>`);
  }
}

function chart(id, title, series, color) {
  const el = $(id);
  const opts = { title, width: Math.max(400, el.clientWidth - 10), height: 200,
    series: [{}, { label: series, stroke: color, width: 2, fill: color + "22" }], axes: [{}, { size: 60 }] };
  return new uPlot(opts, [[], []], el);
}

async function loadCharts() {
  const r = await api("/api/monitoring/history");
  if (!r.ok) return;
  const points = r.data.points;
  $("#chart-note").textContent = `${points.length} points, one every ${r.data.interval_ms / 1000} s (the node's [monitoring] metrics_collection_interval_ms)`;
  if (!state.charts.rate) {
    state.charts.rate = chart("#chart-rate", "Tasks finished per second", "tasks/s", "#2456c7");
    state.charts.latency = chart("#chart-latency", "Task latency p95 (ms)", "p95 ms", "#a15c00");
    state.charts.queue = chart("#chart-queue", "Queued tasks", "queued", "#1e7b34");
  }
  const xs = points.map((p) => p.at_ms / 1000);
  state.charts.rate.setData([xs, points.map((p) => p.tasks_per_second)]);
  state.charts.latency.setData([xs, points.map((p) => p.task_p95_ms)]);
  state.charts.queue.setData([xs, points.map((p) => p.queue_depth)]);
}

async function loadAgents() {
  const [agents, breakers] = await Promise.all([api("/api/agents?limit=1000"), api("/api/breakers")]);
  if (!agents.ok) return;
  const byId = {};
  if (breakers.ok) breakers.data.breakers.forEach((b) => (byId[b.id] = b.state));
  rows("#agents", agents.data.agents, (a) => `<tr><td>${esc(a.name)}</td><td>${esc(a.node)}</td><td>${esc(a.type)}</td>` +
    `<td class="${cls(a.state)}">${esc(a.state)}</td><td>${esc(a.running_tasks)}/${esc(a.max_concurrent_tasks)}</td>` +
    `<td class="wrap">${a.capabilities.map((c) => `${esc(c.name)} (${Number(c.proficiency).toFixed(2)})`).join(", ")}</td>` +
    `<td>${esc(a.tasks_completed)}</td><td>${esc(a.tasks_failed)}</td><td class="${cls(byId["agent:" + a.id])}">${esc(byId["agent:" + a.id] || "closed")}</td></tr>`);
}

async function loadTasks() {
  const f = new FormData($("#task-filter"));
  const q = new URLSearchParams({ limit: "50" });
  if (f.get("status")) q.set("status", f.get("status"));
  if (f.get("type")) q.set("type", f.get("type"));
  const r = await api(`/api/tasks?${q}`);
  if (!r.ok) return;
  rows("#tasks", r.data.tasks, (t) => `<tr data-id="${esc(t.id)}"><td>${esc(t.id)}</td><td class="${cls(t.status)}">${esc(t.status)}</td>` +
    `<td>${esc(t.type)}</td><td>${esc(t.priority)}</td><td>${esc(t.attempts)}</td><td>${esc(t.created_at)}</td><td class="wrap">${esc(t.description)}</td></tr>`,
    (t) => showTask(t.id));
}

async function showTask(id) {
  const r = await api(`/api/tasks/${encodeURIComponent(id)}`);
  const el = $("#task-detail");
  el.hidden = false;
  if (!r.ok) { el.innerHTML = `<p class="error">${esc(r.error && r.error.message)}</p>`; return; }
  const t = r.data;
  el.innerHTML = `<h3>Task ${esc(t.id)}</h3><p>status <b class="${cls(t.status)}">${esc(t.status)}</b>, ${esc(t.attempts)}/${esc(t.max_attempts)} attempts, agent ${esc(t.assigned_agent)}</p>` +
    `<h4>Events</h4><table><thead><tr><th>At</th><th>From</th><th>To</th><th>Reason</th></tr></thead><tbody>` +
    (t.events || []).map((e) => `<tr><td>${esc(e.at)}</td><td>${esc(e.from)}</td><td>${esc(e.to)}</td><td class="wrap">${esc(e.reason)}</td></tr>`).join("") +
    `</tbody></table><h4>Result</h4><pre>${esc(JSON.stringify(t.result, null, 2))}</pre>` +
    (t.error ? `<h4>Error</h4><pre>${esc(JSON.stringify(t.error, null, 2))}</pre>` : "");
}

async function loadActors() {
  const f = new FormData($("#actor-filter"));
  const q = new URLSearchParams({ limit: "200" });
  if (f.get("kind")) q.set("kind", f.get("kind"));
  if (f.get("sort")) q.set("sort", f.get("sort"));
  const r = await api(`/api/actors?${q}`);
  if (!r.ok) return;
  const select = $("#actor-filter select[name=kind]");
  const kinds = new Set();
  Object.values(r.data.by_kind || {}).forEach((k) => Object.keys(k).forEach((x) => kinds.add(x)));
  const known = new Set([...select.options].map((o) => o.value));
  [...kinds].sort().forEach((k) => { if (!known.has(k)) select.add(new Option(k, k)); });
  rows("#actors", r.data.actors, (a) => `<tr><td>${esc(a.node)}/${esc(a.id)}</td><td>${esc(a.kind)}</td><td>${esc(a.name)}</td>` +
    `<td>${esc(a.state)}</td><td>${esc(a.mailbox_size)}</td><td>${esc(a.messages)}</td><td>${esc(a.errors)}</td><td>${esc(a.last_message_at)}</td></tr>`,
    (a) => showActor(a.node, a.id));
}

async function showActor(node, id) {
  const r = await api(`/api/actors/${encodeURIComponent(node)}/${id}`);
  const el = $("#actor-detail");
  el.hidden = false;
  if (!r.ok) { el.innerHTML = `<p class="error">${esc(r.error && r.error.message)}</p>`; return; }
  const a = r.data;
  el.innerHTML = `<h3>${esc(a.kind)} ${esc(a.name)} <span class="muted">${esc(a.node)}/${esc(a.id)}</span></h3>` +
    `<p>state <b>${esc(a.state)}</b> · mailbox ${esc(a.mailbox_size)} · ${esc(a.messages)} messages · ${esc(a.errors)} errors · busy ${esc(a.busy_ms)} ms` +
    (a.parent_actor ? ` · parent ${esc(a.parent_actor.kind)} ${esc(a.parent_actor.name)}` : "") + `</p>` +
    `<pre>${esc(JSON.stringify(a.summary, null, 2))}</pre>`;
}

async function submitTask(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  let payload;
  try { payload = JSON.parse(f.get("payload") || "null"); } catch (e) { $("#submit-error").textContent = "payload: not valid JSON"; return; }
  $("#submit-error").textContent = "";
  const r = await api("/api/tasks", { method: "POST", body: { description: f.get("description"), type: f.get("type"), priority: f.get("priority"), payload } });
  if (!r.ok) { $("#submit-error").textContent = r.error ? `${r.error.field ? r.error.field + ": " : ""}${r.error.message}` : `HTTP ${r.status}`; return; }
  state.submitted = r.data.id;
  renderSubmitted(r.data.id, state.taskStatus.get(r.data.id) || r.data.status);
  watchSubmitted(r.data.id);
}

function renderSubmitted(id, status, result) {
  const el = $("#submitted");
  el.hidden = false;
  el.innerHTML = `<p>Task <code id="submitted-id">${esc(id)}</code>: <b id="submitted-status" data-status="${esc(status)}" class="${cls(status)}">${esc(status)}</b></p>` +
    (result !== undefined ? `<pre>${esc(JSON.stringify(result, null, 2))}</pre>` : "");
}

// The feed says when the task moves; a long-poll is the fallback when the feed is down.
async function watchSubmitted(id) {
  while (state.submitted === id) {
    const r = await api(`/api/tasks/${encodeURIComponent(id)}/wait?timeout_ms=20000`);
    if (r.status === 200) { renderSubmitted(id, r.data.status, r.data.result); return; }
    if (r.status !== 202) return;
  }
}

function onEvent(type, data) {
  const list = $("#events");
  const item = document.createElement("li");
  const d = data.data || {};
  item.textContent = `${data.at || ""} ${type} ${d.task_id || d.name || d.node || d.id || ""} ${d.to || d.state || d.status || ""}`;
  list.prepend(item);
  while (list.children.length > 60) list.lastChild.remove();
  if (type === "task") {
    state.taskStatus.set(d.task_id, d.to);
    if (state.taskStatus.size > 2000) state.taskStatus.delete(state.taskStatus.keys().next().value);
    if (d.task_id === state.submitted && $("#submitted-status").dataset.status !== "completed") renderSubmitted(d.task_id, d.to);
  }
  scheduleRefresh();
}

function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refreshView(); }, 700);
}

async function startFeed() {
  if (state.feed) return;
  state.feed = true;
  while (true) {
    try {
      const headers = authHeaders();
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const res = await fetch("/api/events", { headers });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      $("#live").textContent = "live";
      $("#live").className = "badge on";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message", data = "", id = null;
          block.split("\n").forEach((line) => {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = line.slice(4);
          });
          if (id) state.lastEventId = id;
          if (data && !["hello", "end", "missed"].includes(event)) onEvent(event, JSON.parse(data));
        }
      }
    } catch (e) {
      /* reconnect below */
    }
    $("#live").textContent = "reconnecting";
    $("#live").className = "badge off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

const loaders = { overview: loadOverview, charts: loadCharts, agents: loadAgents, tasks: loadTasks, actors: loadActors, submit: async () => {} };

function refreshView() { if (!$("#login").hidden) return; loaders[state.view]().catch((e) => console.error(`dashboard: ${state.view}: ${e}`)); }

function show(view) {
  if (!loaders[view]) view = "overview";
  state.view = view;
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== `view-${view}`));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  refreshView();
}

async function boot() {
  $("#login-form").addEventListener("submit", login);
  $("#submit-form").addEventListener("submit", submitTask);
  $("#task-filter").addEventListener("submit", (e) => { e.preventDefault(); loadTasks(); });
  $("#actor-filter").addEventListener("submit", (e) => { e.preventDefault(); loadActors(); });
  $("#logout").addEventListener("click", () => { sessionStorage.clear(); location.reload(); });
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  setInterval(refreshView, 5000);
  const probe = await api("/api/hive/status");
  if (probe.status === 401) return;
  if (sessionStorage.getItem("hub.token") || sessionStorage.getItem("hub.apiKey")) $("#logout").hidden = false;
  startFeed();
  show(location.hash.slice(1) || "overview");
}

boot();
