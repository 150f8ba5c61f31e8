// The AIOS dashboard: renders one page's data, kept current over a WebSocket, or by polling
// /api/pages/NAME when the WebSocket cannot connect. Data is only ever inserted as text.
"use strict";

const PAGES = ["overview", "agents", "evolution", "performance", "approvals"];
const POLL_MS = 3000;
const RETRY_WS_MS = 15000;
const charts = {};
let page = currentPage();
let version = -1;
let socket = null;
let pollTimer = null;
let pollWhy = "";
let seenEvents = new Set();

function currentPage() {
  const name = location.hash.replace("#", "");
  return PAGES.includes(name) ? name : "overview";
}

// ---- building DOM safely -------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const card = (width, title, ...body) => el("section", { class: `card ${width}` }, el("h2", {}, title), ...body);
const empty = (text) => el("p", { class: "empty" }, text);
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(0)}%`);
const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const secs = (v) => (v === null || v === undefined ? "–" : v < 120 ? `${v.toFixed(1)} s` : `${(v / 60).toFixed(1)} min`);
function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
function grade(name) { return el("span", { class: `grade ${name || "none"}` }, name || "no data"); }

function table(id, columns, rows, rowAttrs, none = "nothing yet") {
  if (!rows || rows.length === 0) return el("div", { id }, empty(none));
  const head = el("tr", {}, columns.map(([label]) => el("th", {}, label)));
  const body = rows.map((row) => el("tr", rowAttrs ? rowAttrs(row) : {},
    columns.map(([, cell]) => { const v = cell(row); return el("td", {}, v instanceof Node ? v : v ?? "–"); })));
  return el("table", { id }, el("thead", {}, head), el("tbody", {}, body));
}

// ---- charts (uPlot, shipped in static/vendor) ---------------------------------------
function bandsPlugin(bands) {
  const colours = { excellent: "#1f9d5522", healthy: "#1f9d5522", good: "#4c9f3818", ok: "#4c9f3818",
    degraded: "#e0a10022", critical: "#d6454522" };
  return { hooks: { drawClear: (u) => {
    const ctx = u.ctx; let top = 1.0;
    for (const [low, name] of bands) {
      const y0 = u.valToPos(top, "y", true), y1 = u.valToPos(low, "y", true);
      ctx.fillStyle = colours[name] || "#0000"; ctx.fillRect(u.bbox.left, y0, u.bbox.width, y1 - y0);
      top = low;
    }
  } } };
}

function chart(id, data, seriesSpec, opts = {}) {
  const holder = el("div", { id, class: "chart" });
  if (!data.t || data.t.length < 2) { holder.append(empty("not enough data yet")); return holder; }
  requestAnimationFrame(() => {
    if (charts[id]) charts[id].destroy();
    const width = Math.max(holder.clientWidth, 200);
    const columns = [data.t, ...seriesSpec.map((s) => data[s.key] || [])];
    charts[id] = new uPlot({
      width, height: opts.height || 220,
      scales: opts.range ? { y: { range: opts.range } } : {},
      series: [{}, ...seriesSpec.map((s) => ({ label: s.label, stroke: s.colour, width: 2,
        fill: s.fill, spanGaps: false, value: (u, v) => (v === null ? "–" : v.toFixed(s.digits ?? 2)) }))],
      axes: [{}, { size: 50 }],
      plugins: opts.bands ? [bandsPlugin(opts.bands)] : [],
    }, columns, holder);
  });
  return holder;
}

// ---- pages -------------------------------------------------------------------------
const PALETTE = ["#2f6fde", "#1f9d55", "#e0a100", "#d64545", "#7b4fd6", "#0aa3a3"];

function renderOverview(d) {
  const score = d.score || {};
  const issues = table("top-issues", [["event", (r) => r.type], ["subject", (r) => r.subject],
    ["severity", (r) => el("span", { class: `sev-${r.severity}` }, r.severity)], ["count", (r) => r.count],
    ["last", (r) => when(r.last)]], d.top_issues);
  const timeline = table("timeline", [["time", (r) => when(r.time)], ["event", (r) => r.type],
    ["subject", (r) => r.subject], ["severity", (r) => el("span", { class: `sev-${r.severity}` }, r.severity)],
    ["priority", (r) => r.priority]], d.timeline,
    (r) => ({ "data-event-id": r.id, class: seenEvents.size && !seenEvents.has(r.id) ? "new" : null }));
  seenEvents = new Set((d.timeline || []).map((r) => r.id));
  const c = d.counts;
  return [
    card("w4", `Score (${d.preset} preset)`,
      el("div", { id: "score-value", class: "big" }, score.value === null || score.value === undefined ? "–" : score.value.toFixed(2)),
      el("div", {}, grade(score.grade), " ", el("span", { id: "trend", class: "sub" }, score.trend ? `trend: ${score.trend}` : "")),
      el("div", { class: "sub" }, score.time ? `scored ${when(score.time)}` : "no score recorded yet")),
    card("w8", "Score, last 48 h", chart("score-chart", d.series,
      [{ key: "score", label: "score", colour: "#2f6fde" }], { bands: d.bands, range: [0, 1] })),
    card("w3", "Events, 24 h", el("div", { class: "stat", id: "events-24h" }, c.events_24h), el("div", { class: "sub" }, `${c.urgent_24h} urgent (P0/P1)`)),
    card("w3", "Remediations, 24 h", el("div", { class: "stat" }, c.remediations_24h), el("div", { class: "sub" }, `${c.fixed_24h} fixed and verified`)),
    card("w3", "Waiting for approval", el("div", { class: "stat", id: "waiting-count" }, c.waiting_approvals), el("div", { class: "sub" }, el("a", { href: "#approvals" }, "see approvals"))),
    card("w3", "Top issue", el("div", { class: "stat" }, d.top_issues.length ? d.top_issues[0].type : "none"), el("div", { class: "sub" }, d.top_issues.length ? `${d.top_issues[0].count}× ${d.top_issues[0].subject}` : "")),
    card("w6", "Event timeline", timeline),
    card("w6", "Top issues, 24 h", issues),
  ];
}

function renderAgents(d) {
  const agents = table("agents-table", [["agent", (r) => r.agent],
    ["state", (r) => el("span", { class: `state-${r.state}` }, r.state)], ["since", (r) => when(r.since)],
    ["success", (r) => pct(r.success_rate)], ["done", (r) => r.completed], ["failed", (r) => r.failed],
    ["processes", (r) => r.processes], ["CPU %", (r) => num(r.cpu_percent, 1)], ["RSS MB", (r) => num(r.rss_mb)],
    ["last error", (r) => r.last_error]], d.agents);
  const tasks = table("tasks-table", [["time", (r) => when(r.time)], ["agent", (r) => r.agent], ["task", (r) => r.task],
    ["outcome", (r) => el("span", { class: r.outcome === "failed" ? "sev-high" : "" }, r.outcome)],
    ["latency", (r) => (r.latency_ms === null ? "–" : `${num(r.latency_ms)} ms`)], ["error", (r) => r.error]], d.recent_tasks);
  return [card("w12", "Agents (tasks over 24 h)", agents), card("w12", "Recent tasks", tasks)];
}

function renderEvolution(d) {
  const names = Object.keys(d.components).filter((k) => k !== "t");
  const lessons = table("lessons-table", [["lesson", (r) => r.symptom], ["owner", (r) => r.owner], ["state", (r) => r.state], ["seen", (r) => r.count],
    ["verified", (r) => r.successes], ["failed", (r) => r.failures], ["last seen", (r) => when(r.last_seen)]], d.lessons);
  const playbooks = table("playbooks-table", [["playbook", (r) => r.playbook], ["runs", (r) => r.runs],
    ["succeeded", (r) => r.succeeded], ["rolled back", (r) => r.rolled_back], ["failed", (r) => r.failed],
    ["denied", (r) => r.denied], ["success", (r) => pct(r.success_rate)]], d.playbooks);
  const suggestions = d.suggestions.length
    ? el("ul", { class: "plain", id: "suggestions" }, d.suggestions.map((s) =>
      el("li", {}, el("strong", {}, s.kind), s.subject ? ` · ${s.subject}` : "", el("div", {}, s.text), el("div", { class: "sub" }, when(s.time)))))
    : el("div", { id: "suggestions" }, empty("no suggestions"));
  return [
    card("w6", "Score, 7 days", chart("evolution-score-chart", d.score, [{ key: "score", label: "score", colour: "#2f6fde" }], { bands: d.bands, range: [0, 1] })),
    card("w6", "Components", chart("components-chart", d.components,
      names.map((n, i) => ({ key: n, label: n.replaceAll("_", " "), colour: PALETTE[i % PALETTE.length] })), { range: [0, 1] })),
    card("w6", "Lessons", lessons),
    card("w6", "Playbook effectiveness, 7 days", playbooks),
    card("w12", "Suggestions", suggestions),
  ];
}

function renderPerformance(d) {
  const r = d.remediation;
  return [
    card("w3", "Remediations, 7 days", el("div", { class: "stat", id: "remediation-count" }, r.count), el("div", { class: "sub" }, `${r.resolved} resolved and verified`)),
    card("w3", "Event → action, automatic", el("div", { class: "stat", id: "latency-p50" }, secs(r.latency_p50_s)),
      el("div", { class: "sub" }, `p95 ${secs(r.latency_p95_s)} over ${r.automatic}; ${r.approved} approved first (p50 ${secs(r.approved_latency_p50_s)}, mostly the wait for an answer)`)),
    card("w3", "MTTR", el("div", { class: "stat", id: "mttr" }, secs(r.mttr_s)), el("div", { class: "sub" }, "trigger to verified fix")),
    card("w3", "Tasks, 24 h", el("div", { class: "stat" }, (d.throughput.completed || []).reduce((a, b) => a + (b || 0), 0)),
      el("div", { class: "sub" }, `${(d.throughput.failed || []).reduce((a, b) => a + (b || 0), 0)} failed`)),
    card("w6", "Event rate by priority (per 10 min)", chart("rates-chart", d.rates,
      ["P0", "P1", "P2", "P3"].map((p, i) => ({ key: p, label: p, colour: ["#d64545", "#e07b00", "#e0a100", "#8a94a6"][i], digits: 0 })))),
    card("w6", "Throughput (tasks per 10 min)", chart("throughput-chart", d.throughput,
      [{ key: "completed", label: "completed", colour: "#1f9d55", digits: 0 }, { key: "failed", label: "failed", colour: "#d64545", digits: 0 }])),
    card("w6", "Remediation latency (s)", chart("latency-chart", d.latency,
      [{ key: "latency_s", label: "event → action", colour: "#2f6fde", digits: 1 }, { key: "resolve_s", label: "event → finished", colour: "#7b4fd6", digits: 1 }])),
    card("w6", "MTTR per hour (s)", chart("mttr-chart", d.mttr, [{ key: "mttr_s", label: "MTTR", colour: "#0aa3a3", digits: 1 }])),
  ];
}

function renderApprovals(d) {
  const waiting = table("approvals-table", [["since", (r) => when(r.since)], ["playbook", (r) => r.playbook], ["risk", (r) => r.risk],
    ["deadline", (r) => (r.overdue ? el("span", { class: "sev-high" }, `${when(r.deadline)}: past, nobody can answer it now (the next aios up expires it)`) : when(r.deadline))],
    ["flow run", (r) => (r.link ? el("a", { href: r.link, target: "_blank", rel: "noopener" }, "open in Prefect UI") : r.flow_run_id)]],
    d.waiting, null, "nothing is waiting for a person");
  const recent = table("decisions-table", [["asked", (r) => when(r.requested)], ["playbook", (r) => r.playbook], ["risk", (r) => r.risk],
    ["decision", (r) => r.decision], ["by", (r) => r.approver]], d.recent, null, "no decisions in the last 7 days");
  const where = d.ui_url ? el("p", { class: "sub" }, "Approve or reject in the Prefect UI (", el("a", { href: d.ui_url, target: "_blank", rel: "noopener" }, d.ui_url), ") or with aios approvals approve RUN.")
    : el("p", { class: "sub" }, "No Prefect UI address known: start aios up. At a terminal: aios approvals list.");
  const refused = table("refused-table", [["when", (r) => when(r.time)], ["name given", (r) => r.approver], ["playbook", (r) => r.playbook],
    ["risk", (r) => r.risk], ["via", (r) => r.via], ["why", (r) => r.reason]], d.refused, null, "no answer refused in the last 7 days");
  return [card("w12", "Waiting for approval", where, waiting), card("w12", "Recent decisions", recent),
    card("w12", "Refused answers (did not count)", refused)];
}

const RENDER = { overview: renderOverview, agents: renderAgents, evolution: renderEvolution,
  performance: renderPerformance, approvals: renderApprovals };

function show(message) {
  if (message.page !== page) return;
  const main = document.getElementById("page");
  const problem = document.getElementById("problem");
  problem.hidden = !message.error;
  problem.textContent = message.error || "";
  document.getElementById("home").textContent = `AIOS_HOME ${message.home}`;
  document.getElementById("built").textContent = message.built ? `updated ${when(message.built)}` : "";
  if (message.version === version && main.dataset.page === page) return;
  version = message.version;
  main.dataset.page = page;
  main.dataset.version = String(version);
  // Keep the reader's place: hold the height while the page is rebuilt and the charts drawn.
  const y = window.scrollY;
  main.style.minHeight = `${main.offsetHeight}px`;
  main.replaceChildren(...(message.data ? RENDER[page](message.data) : [empty("no data yet")]));
  requestAnimationFrame(() => requestAnimationFrame(() => {
    window.scrollTo(0, y);
    main.style.minHeight = "";
  }));
}

// ---- transport: WebSocket, polling as the fallback ----------------------------------
function setStatus(kind, text) {
  const status = document.getElementById("status");
  status.className = kind;
  status.dataset.transport = kind;
  status.textContent = text;
}

async function poll() {
  try {
    const response = await fetch(`/api/pages/${page}`, { cache: "no-store" });
    if (response.ok) {
      show(await response.json());
      if (pollTimer) setStatus("polling", `polling every ${POLL_MS / 1000} s (${pollWhy})`);
    }
  } catch (e) { setStatus("polling", "polling (server unreachable)"); }
}

function startPolling(why) {
  if (pollTimer) return;
  pollWhy = why;
  setStatus("polling", `polling every ${POLL_MS / 1000} s (${why})`);
  poll();
  pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() { if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } }

function connect() {
  if (typeof WebSocket !== "function") { startPolling("WebSocket unavailable"); return; }
  let ws;
  try {
    ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?page=${page}`);
  } catch (e) { startPolling("WebSocket refused"); setTimeout(connect, RETRY_WS_MS); return; }
  socket = ws;
  ws.onopen = () => { stopPolling(); setStatus("live", "live"); };
  ws.onmessage = (m) => show(JSON.parse(m.data));
  ws.onclose = () => {
    if (socket === ws) socket = null;
    startPolling("WebSocket closed");
    setTimeout(connect, RETRY_WS_MS);
  };
}

function choose() {
  page = currentPage();
  version = -1;
  seenEvents = new Set();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === page);
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ page }));
  else poll();
}

window.addEventListener("hashchange", choose);
choose();
connect();
