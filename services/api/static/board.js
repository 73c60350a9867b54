// The wall board (contract 7). Everything shown is built with textContent: a queue id,
// an agent id or a reason holding HTML is shown as text, never parsed.
"use strict";
(() => {
const $ = id => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const DEFAULTS = { sl_target: 0.9, sl_alert_below: 0.85, sl_threshold_s: 30, windows_s: [300] };
const OPEN = ["proposed", "approved", "sent"];
const state = {
  queues: {}, history: {}, alerts: [], actions: [], settings: {}, tickS: 2, lastTick: 0,
  role: "viewer", site: new URLSearchParams(location.search).get("site") || "",
  day: null,  // the queue whose day is shown in 15-minute intervals, and its intervals
  agents: {}, agentsAt: 0,  // per queue: agents staffed and overdue (GET /v1/agents)
};
window.boardState = state;  // read by the browser tests

// ---- tokens: a viewer's token may sit in a wall display's URL; any other is taken out of
// the address bar and kept in this tab only. The websocket gets a single-use ticket.
const params = new URLSearchParams(location.search);
const urlToken = params.get("token");
let token = urlToken || sessionStorage.getItem("floorwatch-token");
localStorage.removeItem("floorwatch-token");  // where older versions kept it

// ---- building DOM without parsing anything
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const svg = (tag, attrs) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

// ---- formatting
const num = v => typeof v === "number" && isFinite(v);
const pct = v => num(v) ? (100 * v).toFixed(1) + "%" : "–";
const pct0 = v => num(v) ? Math.round(100 * v) + "%" : "–";
function dur(v) {
  if (!num(v)) return "–";
  const s = Math.round(v);
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}:${String(s % 60).padStart(2, "0")}` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
const hhmmss = d => d.toLocaleTimeString("en-GB", { hour12: false });
const at = iso => iso ? hhmmss(new Date(iso)) : "–";
const windowWords = s => s % 60 ? `${s} s` : `${s / 60} min`;

// ---- what a queue shows: its own figures, or one site's when a site is picked
function settingsOf(id) { return { ...DEFAULTS, ...(state.settings[id] || {}) }; }
function primaryKey(q) {
  const first = settingsOf(q.queue_id).windows_s[0];
  const keys = Object.keys(q.windows || {});
  return keys.includes(String(first)) ? String(first) : keys.sort((a, b) => a - b)[0];
}
function figures(q) {
  const key = primaryKey(q);
  const site = state.site && q.by_site ? q.by_site[state.site] : null;
  const src = site || q;
  const w = (src.windows ? src.windows[key] : site) || {};
  return {
    key, w, waiting: src.waiting, over: src.waiting_over_target, longest: src.longest_wait_s,
    callbacks: src.callbacks_pending, oldestCallback: src.oldest_callback_s,
    agents: src.agents || {},
  };
}
function liveRate(q) {
  const f = figures(q);
  return num(f.w.answer_rate_live) ? f.w.answer_rate_live : f.w.answer_rate;
}
// how callers fare: "" (at target, or nothing offered), "warn" (below target), "bad" (below the alert line)
function level(q) {
  const s = settingsOf(q.queue_id), f = figures(q), live = liveRate(q);
  if (!num(live)) return q.sl_breach ? "bad" : "";
  if (live >= s.sl_target) return "";
  if (live < s.sl_alert_below || q.sl_breach) return f.waiting === 0 ? "warn" : "bad";
  return "warn";
}
const tierOf = q => (q.surge && q.surge.tier) || 0;
// worst first: callers failing now, then the higher tier, the lower live rate, the longer wait
function urgency(q) {
  const lv = { bad: 2, warn: 1, "": 0 }[level(q)];
  const live = liveRate(q);
  return [-lv, -tierOf(q), num(live) ? live : 2, -(figures(q).longest || 0), q.queue_id];
}
function compare(a, b) {
  const x = urgency(a), y = urgency(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
function shownQueues() {
  return Object.values(state.queues)
    .filter(q => !state.site || (q.by_site && state.site in q.by_site))
    .sort(compare);
}

// agents lent and borrowed through the dispatcher's open plans (when the snapshot does not say)
function moves() {
  const out = {};
  const get = id => out[id] = out[id] || { lent: 0, borrowed: 0, standby: 0 };
  for (const a of state.actions) {
    if (a.state !== "approved" && a.state !== "sent") continue;
    for (const c of commandsOf(a)) {
      if (c.type === "agent.reassign") { get(c.to_queue || a.queue_id).borrowed++; get(c.from_queue).lent++; }
      if (c.type === "agent.activate") get(c.queue_id || a.queue_id).standby++;
    }
  }
  return out;
}
function staffing(q, moved) {
  const s = q.staffing || {};
  const m = moved[q.queue_id] || { lent: 0, borrowed: 0, standby: 0 };
  let needed = s.needed;
  if (!num(needed)) {  // the dispatcher's latest reckoning for this queue, if any
    const latest = state.actions.find(a => a.queue_id === q.queue_id && a.reason && num(a.reason.agents_needed));
    needed = latest ? latest.reason.agents_needed : null;
  }
  return {
    needed, have: num(s.have) ? s.have : (q.agents || {}).staffed,
    lent: num(s.lent) ? s.lent : m.lent, borrowed: num(s.borrowed) ? s.borrowed : m.borrowed + m.standby,
  };
}

// ---- tiles
function trend(id) {
  const h = (state.history[id] || []).filter(p => num(p[1]));
  if (h.length < 2) return "";
  const last = h[h.length - 1], cutoff = Date.parse(last[0]) - 60_000;
  const before = h.find(p => Date.parse(p[0]) >= cutoff) || h[0];
  const d = last[1] - before[1];
  return d > 0.02 ? "▲ rising" : d < -0.02 ? "▼ falling" : "▶ steady";
}
function spark(id, target) {
  const box = svg("svg", { class: "spark", viewBox: "0 0 100 32", preserveAspectRatio: "none" });
  const y = v => (30 - 28 * v).toFixed(1);
  box.append(svg("line", { x1: 0, x2: 100, y1: y(target), y2: y(target), stroke: "#6e7681",
                           "stroke-width": ".8", "stroke-dasharray": "2 2", "vector-effect": "non-scaling-stroke" }));
  const pts = (state.history[id] || []).filter(p => num(p[1]));
  if (pts.length >= 2) {
    const t0 = Date.parse(pts[0][0]), t1 = Date.parse(pts[pts.length - 1][0]);
    const xy = pts.map(p => (100 * (Date.parse(p[0]) - t0) / Math.max(1, t1 - t0)).toFixed(1) + "," + y(p[1]));
    box.append(svg("polyline", { points: xy.join(" "), fill: "none", stroke: "#79c0ff",
                                 "stroke-width": "2", "vector-effect": "non-scaling-stroke" }));
  }
  return box;
}
function tierBadge(tier) {
  const pips = [1, 2, 3].map(i => el("span", { class: i <= tier ? "pip" : "pip off" }));
  return el("span", { class: `badge t${tier}`, data: { field: "tier" }, "aria-label": tier ? `surge tier ${tier}` : "no surge" },
            tier ? `TIER ${tier}` : "normal", tier ? pips : null);
}
function fig(label, field, value, cls) {
  return el("div", {}, label, el("b", { data: { field }, class: cls || null }, value));
}
function tile(q, moved) {
  const s = settingsOf(q.queue_id), f = figures(q), w = f.w, lv = level(q), tier = tierOf(q);
  const st = staffing(q, moved);
  const surge = q.surge || {};
  const ratio = num(surge.ratio) ? `${pct0(surge.ratio)} of ${surge.basis === "baseline" ? "usual" : "forecast"}` : "no forecast";
  const arrivals = num(surge.arrivals) ? `${surge.arrivals} calls in ${windowWords(surge.window_s || 300)}` : "";
  const expected = num(surge.expected) ? `, ${Math.round(surge.expected)} expected` : "";
  const short = num(st.needed) && num(st.have) && st.needed > st.have;
  const returnNow = st.lent > 0 && lv === "bad";
  const lentIds = st.lent > 0 ? lentBy(q.queue_id) : [];
  const known = Object.keys(q.by_site || {}).some(n => n !== "unknown");
  const sites = known && !state.site ? Object.entries(q.by_site).map(([name, b]) => {
    const bw = b.windows ? b.windows[f.key] : b;
    return `${name} ${pct0(bw && (num(bw.answer_rate_live) ? bw.answer_rate_live : bw.answer_rate))}`;
  }).join(" · ") : "";
  return el("article", { class: `tile tier${tier}`, data: { queue: q.queue_id } },
    el("h2", {}, el("span", { class: "qid", title: `${q.queue_id}: click for the day in 15-minute intervals`,
                              data: { field: "queue", day: q.queue_id } }, q.queue_id), tierBadge(tier)),
    el("div", { class: "surge", data: { field: "surge" } }, `${ratio}${arrivals ? " · " + arrivals + expected : ""}`),
    el("div", { class: "headline" },
      el("span", { class: `rate ${lv}`, data: { field: "answer_rate" } }, pct(w.answer_rate))),
    el("div", { class: "label", data: { field: "headline" } },
      `answered within ${s.sl_threshold_s} s, last ${windowWords(Number(f.key))}, target ${pct0(s.sl_target)}`),
    el("div", { class: "now" }, "now ", el("b", { class: lv || null, data: { field: "answer_rate_live" } }, pct(w.answer_rate_live)),
      " ", el("span", { class: "trend", data: { field: "trend" } }, trend(q.queue_id)),
      el("div", { class: "dim" }, "now: callers still waiting past target count as missed")),
    lv && f.waiting === 0 && num(w.answer_rate) && w.answer_rate < s.sl_target
      ? el("div", { class: "note" }, "recovering: nobody waiting now") : null,
    overdueLine(q.queue_id),
    el("div", { class: "figs" },
      fig("waiting", "waiting", f.waiting ?? "–"),
      fig(`over ${s.sl_threshold_s} s`, "waiting_over_target", f.over ?? "–", f.over > 0 ? lv || null : null),
      fig("longest wait", "longest_wait_s", dur(f.longest), f.longest > s.sl_threshold_s ? lv || null : null),
      fig("needed / staffed", "staffing", `${num(st.needed) ? st.needed : "–"} / ${st.have ?? "–"}`, short ? "bad" : null),
      fig("available", "agents", f.agents.available ?? "–"),
      fig(returnNow ? "lent: return now" : "borrowed / lent", "moves", `${st.borrowed} / ${st.lent}`, returnNow ? "bad" : null),
      fig("callbacks", "callbacks_pending", num(f.callbacks) ? f.callbacks : "–"),
      fig("oldest callback", "oldest_callback_s", num(f.callbacks) ? dur(f.oldestCallback) : "–"),
      fig("abandoned", "abandon_rate", pct(w.abandon_rate), num(w.abandon_rate) && w.abandon_rate > (s.abandon_cap ?? 0.05) ? "warn" : null),
      fig("ASA", "asa_s", dur(w.asa_s)),
      fig("AHT", "aht_s", dur(w.aht_s)),
      fig("offered", "offered", w.offered ?? "–")),
    lentIds.length ? el("div", { class: "return" }, `${st.lent} lent to other queues`,
      button(returnNow ? "return urgent" : "return", { undo: lentIds.join("\n") }, "return now")) : null,
    sites ? el("div", { class: "sites", data: { field: "sites" } }, "by site: " + sites) : null,
    spark(q.queue_id, s.sl_target),
    el("div", { class: "caption" }, `"now", last 30 min; dashed line: target ${pct0(s.sl_target)}`));
}

// ---- agents: not ready or in wrap-up longer than the queue allows (settings
// not_ready_alert_s, wrap_up_alert_s); counts for every tile, one queue's list in its day
const AGENTS_EVERY_MS = 5000, AGENTS_SHOWN = 24;
const STATE_WORDS = { not_ready: "not ready", wrap_up: "wrap-up", busy: "busy", available: "available" };
function overdueLine(id) {
  const counts = state.agents[id] || {};  // with a site picked: its agents alone
  const n = (state.site ? (counts.overdue_by_site || {})[state.site] : counts.overdue) || 0;
  if (!(n > 0)) return null;
  return el("div", { class: "overdue" },
    el("b", { data: { field: "overdue" } }, `${n} agent${n === 1 ? "" : "s"} overdue`),
    el("span", { class: "why" }, " · not ready or wrap-up too long"));
}
async function loadAgents() {
  state.agentsAt = Date.now();
  try {
    const body = await call("GET", "/v1/agents");
    state.agents = Object.fromEntries(body.queues.map(q => [q.queue_id, q]));
    render();
  } catch (e) { console.warn(e); }
}
async function loadDayAgents(day) {
  day.agentsAt = Date.now();
  try {
    const body = await call("GET", `/v1/queues/${encodeURIComponent(day.queue)}/agents`);
    if (state.day === day) { day.agents = body; day.agentsError = ""; }
  } catch (e) {
    if (state.day === day) day.agentsError = "agents unavailable";
    console.warn(e);
  }
  render();
}
function agentsSection(day) {
  const body = day.agents;
  if (!body) return el("div", { class: "agents dim" }, day.agentsError || "agents: loading…");
  const rows = body.agents.filter(a => !day.site || a.site === day.site);
  const staffed = day.site ? rows.length : body.staffed;
  const overdue = day.site ? rows.filter(a => a.overdue).length : body.overdue;
  const shown = rows.slice(0, AGENTS_SHOWN);
  return el("div", { class: "agents" },
    el("h4", {}, el("span", { data: { field: "agents_head" } },
                    `agents: ${staffed} staffed, ${overdue} overdue`),
      el("span", { class: "dim" }, ` · overdue: not ready over ${dur(body.not_ready_alert_s)},` +
                                  ` wrap-up over ${dur(body.wrap_up_alert_s)}; longest first`),
      day.agentsError ? el("span", { class: "warn" }, " " + day.agentsError) : null),
    el("ol", {}, ...shown.map(a => el("li", { class: a.overdue ? "late" : null, data: { agent: a.agent_id } },
      el("b", { class: "flag" }, a.overdue ? "OVERDUE" : ""),
      el("span", { class: "who" }, a.agent_id),
      el("span", {}, STATE_WORDS[a.state] || a.state),
      el("span", { class: "dim" }, a.reason || ""),
      el("span", { class: "time" }, dur(a.in_state_s))))),
    rows.length > shown.length
      ? el("div", { class: "dim" }, `${rows.length - shown.length} more not shown`) : null);
}

// ---- totals: counts summed, rates recomputed from the sums (contract 4)
function renderTotals(queues) {
  const sum = k => queues.reduce((t, q) => t + (num(figures(q).w[k]) ? figures(q).w[k] : 0), 0);
  const offered = sum("offered"), within = sum("answered_within_target"), abandoned = sum("abandoned");
  const waiting = queues.reduce((t, q) => t + (figures(q).waiting || 0), 0);
  const longest = Math.max(0, ...queues.map(q => figures(q).longest || 0));
  const callbacks = queues.some(q => num(figures(q).callbacks))
    ? queues.reduce((t, q) => t + (figures(q).callbacks || 0), 0) : null;
  const acting = queues.filter(q => level(q) === "bad" || tierOf(q) > 0).length;
  const item = (label, field, value) => el("span", {}, label, el("b", { data: { field } }, value));
  $("totals").replaceChildren(
    el("span", { class: "title" }, state.site ? `site ${state.site}` : "all queues"),
    item("answered within target", "total_answer_rate", offered ? pct(within / offered) : "–"),
    item("offered", "total_offered", offered),
    item("abandoned", "total_abandon_rate", offered ? pct(abandoned / offered) : "–"),
    item("waiting", "total_waiting", waiting),
    item("longest wait", "total_longest", dur(longest)),
    item("callbacks waiting", "total_callbacks", callbacks ?? "–"),
    item("need action", "total_acting", `${acting} of ${queues.length}`));
}

// ---- alert chips: most severe first, with the numbers of the latest snapshot
const severity = a => a.kind === "sl_breach" ? 2.5 : (a.tier || 0);
function sortedAlerts() {
  const rank = Object.fromEntries(shownQueues().map((q, i) => [q.queue_id, i]));
  return state.alerts.filter(a => a.state !== "cleared" && (!state.site || a.queue_id in rank))
    .sort((a, b) => (clearing(a) - clearing(b)) || (!!a.acknowledged_by - !!b.acknowledged_by) || severity(b) - severity(a)
                    || (rank[a.queue_id] ?? 1e9) - (rank[b.queue_id] ?? 1e9));
}
// an alert whose queue is already back (the monitor clears it after `clear_after_s`)
function clearing(a) {
  const q = state.queues[a.queue_id];
  if (!q) return false;
  if (a.kind === "surge") return tierOf(q) === 0;
  const live = liveRate(q);
  return !q.sl_breach || (num(live) && live >= settingsOf(a.queue_id).sl_alert_below);
}
function chipText(a) {
  const q = state.queues[a.queue_id];
  const live = q ? liveRate(q) : (a.numbers || {}).answer_rate_live;
  const back = clearing(a) ? " · back, clearing" : "";
  if (a.kind === "surge") {
    const tier = q ? tierOf(q) || a.tier : a.tier;
    const ratio = q && q.surge ? q.surge.ratio : (a.numbers || {}).ratio;
    return `${a.queue_id} · tier ${tier} · ${pct0(ratio)} of forecast · answering ${pct0(live)} now${back}`;
  }
  return `${a.queue_id} · answering ${pct0(live)} now, alert below ${pct0(settingsOf(a.queue_id).sl_alert_below)}${back}`;
}
// buttons survive a re-render (the same node is moved), so a press that spans a tick still clicks
let spare = new Map();
const buttonKey = b => `${b.className}|${b.dataset.ack || b.dataset.approve || b.dataset.reject || b.dataset.undo}|${b.closest("#incident") ? 1 : 0}`;
function keepButtons() { spare = new Map([...document.querySelectorAll("button[data-ack], button[data-approve], button[data-reject], button[data-undo]")].map(b => [buttonKey(b), b])); }
function button(cls, data, text, where) {
  const key = `${cls}|${Object.values(data)[0]}|${where === "incident" ? 1 : 0}`;
  const old = spare.get(key);
  if (old) { spare.delete(key); return old; }
  return el("button", { class: cls, type: "button", data }, text);
}
function ackButton(a, where) {
  return a.acknowledged_by || state.role === "viewer" ? null : button("ack", { ack: a.alert_id }, "ack", where);
}
function renderAlerts() {
  const box = $("alerts");
  const chips = sortedAlerts().map(a => el("span", {
    class: `chip ${a.kind === "sl_breach" && !clearing(a) ? "breach" : ""} ${a.acknowledged_by || clearing(a) ? "acked" : ""}`,
    data: { alert: a.alert_id, severity: severity(a) } },
    a.kind === "surge" ? tierBadge(a.tier || 0) : null,
    el("span", { data: { field: "chip" } }, chipText(a)),
    a.acknowledged_by ? el("span", { class: "dim" }, `ack ${a.acknowledged_by}`) : ackButton(a)));
  box.replaceChildren(...chips);
  if (!chips.length) box.append(el("span", { class: "dim" }, "no active alerts"));
  // one row: chips that do not fit are counted at the end
  let hidden = 0;
  const more = el("span", { class: "chip more", data: { field: "more" } });
  while (box.scrollWidth > box.clientWidth && chips.length) {
    chips.pop().remove(); hidden++;
    more.textContent = `+${hidden} more`;
    if (!more.isConnected) box.append(more);
  }
}

// ---- dispatcher actions, grouped by plan (a v2 action is one plan; v1 wrote one per agent)
const commandsOf = a => a.commands || a.plan || [];
const tierOfAction = a => a.tier ?? (a.reason || {}).tier ?? 0;
function groups() {
  const out = new Map();
  for (const a of state.actions) {
    const key = a.kind ? a.action_id : `${a.queue_id}@${a.created_at}`;
    if (!out.has(key)) out.set(key, []);
    out.get(key).push(a);
  }
  return [...out.entries()].map(([key, actions]) => ({ key, actions }))
    .sort((x, y) => String(y.actions[0].created_at).localeCompare(String(x.actions[0].created_at)));
}
function describe(actions) {
  const from = {}, parts = [];
  let standby = 0, released = 0;
  for (const a of actions) for (const c of commandsOf(a)) {
    if (c.type === "agent.reassign") from[c.from_queue] = (from[c.from_queue] || 0) + 1;
    else if (c.type === "agent.activate") standby++;
    else if (c.type === "agent.release") released++;
    else if (c.type === "queue.callback") parts.push(c.enabled === false ? "callback off" : `callback after ${dur(c.offer_after_s)}`);
    else if (c.type === "queue.overflow") parts.push(c.enabled === false ? "overflow off"
      : `overflow to ${c.to_queue_id || c.to_site} after ${dur(c.after_s)}`);
    else if (c.type) parts.push(c.type);
  }
  if (released) parts.push(`send ${released} agent${released > 1 ? "s" : ""} home`);
  const moved = Object.values(from).reduce((t, n) => t + n, 0);
  const donors = Object.entries(from);
  if (moved) parts.unshift(`move ${moved} agent${moved > 1 ? "s" : ""} from ` + (donors.length === 1
    ? donors[0][0] : donors.map(([q, n]) => `${q} ${n}`).join(", ")));
  if (standby) parts.splice(moved ? 1 : 0, 0, `call in ${standby} standby`);
  return parts.length ? parts.join(" + ") : actions.map(a => a.summary || a.type).join(", ");
}
function planModel(g) {
  const a0 = g.actions[0], q = state.queues[a0.queue_id];
  const before = Math.min(...g.actions.map(a => (a.projected || {}).answer_rate_before).filter(num));
  const after = Math.max(...g.actions.map(a => (a.projected || {}).answer_rate_after).filter(num));
  const then = (a0.reason || {}).answer_rate_live;
  const measured = g.actions.map(a => a.measured && a.measured.answer_rate).find(num);
  const tier = tierOfAction(a0);
  const states = {};
  for (const a of g.actions) states[a.state] = (states[a.state] || 0) + 1;
  const proposed = g.actions.filter(a => a.state === "proposed").map(a => a.action_id);
  return {
    key: g.key, queue: a0.queue_id, when: at(a0.created_at),
    why: a0.kind && a0.kind !== "plan" ? a0.kind : tier ? `tier ${tier}` : "SL",
    what: describe(g.actions),
    projected: isFinite(before) && isFinite(after) ? `projected ${pct0(before)} → ${pct0(after)}` : "",
    effect: num(measured) ? `${pct0(then)} then → ${pct0(measured)} in the 15 min after`
      : `${pct0(then)} then → ${pct0(q ? liveRate(q) : null)} now`,
    state: Object.entries(states).map(([s, n]) => g.actions.length > 1 ? `${s} ${n}` : s).join(", "),
    changed: at(g.actions.map(a => a.changed_at).filter(Boolean).sort().pop()),
    proposed: state.role === "viewer" ? [] : proposed,
    undoable: state.role === "viewer" ? [] : g.actions.filter(undoable).map(a => a.action_id),
  };
}
// a sent action that moved someone or turned routing on can be undone by a lead (contract 6)
const undoable = a => a.state === "sent" && (a.undo || []).length > 0;
// the sent actions holding agents lent by `queueId`: "return now" undoes them
function lentBy(queueId) {
  if (state.role === "viewer") return [];
  return state.actions.filter(a => undoable(a)
    && commandsOf(a).some(c => c.type === "agent.reassign" && c.from_queue === queueId)).map(a => a.action_id);
}
function decisionButtons(m, where) {
  if (!m.proposed.length) {
    return m.undoable.length ? el("span", { class: "buttons" },
      button("undo", { undo: m.undoable.join("\n") }, "undo", where)) : null;
  }
  const ids = m.proposed.join("\n");
  return el("span", { class: "buttons" },
    button("approve", { approve: ids }, "approve", where), button("reject", { reject: ids }, "reject", where));
}
function renderActions() {
  const models = groups().map(planModel);
  const box = $("action-groups");
  const rows = models.map(m => el("div", { class: "plan", data: { plan: m.key, queue: m.queue } },
    el("span", { class: "when" }, m.when),
    el("span", {}, m.queue, " ", el("span", { class: "dim" }, m.why)),
    el("span", { class: "what", data: { field: "what" } }, m.what),
    el("span", { data: { field: "projected" } }, m.projected),
    el("span", { data: { field: "effect" } }, m.effect),
    el("span", { data: { field: "state" } }, m.state, " ", el("span", { class: "dim" }, `at ${m.changed}`)),
    decisionButtons(m) || el("span")));
  box.replaceChildren(...rows);
  if (!rows.length) box.append(el("div", { class: "plan-more" }, "no actions yet"));
  const panel = $("actions");
  let hidden = 0;
  const more = el("div", { class: "plan-more", data: { field: "more" } });
  while (panel.scrollHeight > panel.clientHeight + 1 && rows.length > 1) {
    rows.pop().remove(); hidden++;
    more.textContent = `${hidden} older plan${hidden > 1 ? "s" : ""} not shown`;
    if (!more.isConnected) box.append(more);
  }
  renderIncident(models);
}

// ---- the phone: each queue that needs a lead, with its alerts and its plans
function renderIncident(models) {
  models = models || groups().map(planModel);
  const alerts = sortedAlerts();
  const cards = shownQueues().filter(q => alerts.some(a => a.queue_id === q.queue_id)
      || models.some(m => m.queue === q.queue_id && m.proposed.length)).map(q => {
    const mine = alerts.filter(a => a.queue_id === q.queue_id);
    const plans = models.filter(m => m.queue === q.queue_id).slice(0, 3);
    const since = q.surge && q.surge.since ? ` since ${at(q.surge.since)}` : "";
    return el("article", { class: `incident lv-${level(q) || "ok"}`, data: { incident: q.queue_id } },
      el("h2", {}, q.queue_id, " ", tierBadge(tierOf(q))),
      el("div", { class: "line" }, `answering ${pct(liveRate(q))} now${since} · ${figures(q).waiting ?? 0} waiting, longest ${dur(figures(q).longest)}`),
      mine.map(a => el("div", { class: "row line" }, el("span", {}, chipText(a)),
        a.acknowledged_by ? el("span", { class: "dim" }, `ack ${a.acknowledged_by}`) : ackButton(a, "incident"))),
      plans.map(m => el("div", { class: "plan-card", data: { plan: m.key } },
        el("div", { class: "line" }, el("b", {}, m.when), " ", m.what),
        el("div", { class: "line dim" }, [m.projected, m.effect, m.state].filter(Boolean).join(" · ")),
        decisionButtons(m, "incident"))));
  });
  $("incident").replaceChildren(...cards);
}

// ---- layout: every tile on screen at once, as large as the screen allows
const phone = () => matchMedia("(max-width: 700px)").matches;
function layout(n) {
  const main = $("tiles");
  main.style.removeProperty("font-size");
  if (phone() || !n) { main.style.removeProperty("grid-template-columns"); return; }
  const W = main.clientWidth, H = main.clientHeight;
  let best = 1, bestScore = 0;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const score = Math.min(W / cols / 30, H / rows / 34);  // a tile is about 30 by 34 em
    if (score > bestScore) { best = cols; bestScore = score; }
  }
  main.style.setProperty("grid-template-columns", `repeat(${best}, minmax(0, 1fr))`);
  // the largest type at which no tile clips (bisection on the tiles' font size)
  const fits = size => {
    main.style.setProperty("font-size", size + "px");
    return ![...main.children].some(t => t.scrollHeight > t.clientHeight + 1 || t.scrollWidth > t.clientWidth + 1)
      && ![...main.querySelectorAll(".figs b, .rate")].some(b => b.scrollWidth > b.clientWidth + 1);
  };
  const largest = () => {
    let lo = 6, hi = Math.max(12, 2 * bestScore);
    for (let i = 0; i < 9; i++) { const mid = (lo + hi) / 2; if (fits(mid)) lo = mid; else hi = mid; }
    return lo;
  };
  main.classList.remove("compact");
  let size = largest();
  if (size < 13) {  // many queues: drop the explanations (the headline's label stays) for larger type
    main.classList.add("compact");
    size = largest();
  }
  fits(size);
}

function renderSites() {
  const names = new Set();
  for (const q of Object.values(state.queues)) for (const s of Object.keys(q.by_site || {})) names.add(s);
  names.delete("unknown");  // calls of no known site: no filter of their own
  $("site-pick").hidden = names.size === 0;
  const select = $("site");
  const wanted = ["", ...[...names].sort()];
  if (JSON.stringify([...select.options].map(o => o.value)) !== JSON.stringify(wanted)) {
    select.replaceChildren(...wanted.map(s => el("option", { value: s }, s || "all sites")));
    select.value = state.site;
  }
}

// ---- the day of one queue in 15-minute intervals (GET /v1/intervals) and its "today"
const DAY_MS = 24 * 3600 * 1000, SLOT_MS = 15 * 60 * 1000;
const hhmm = ms => new Date(ms).toLocaleTimeString("en-GB", { hour12: false, hour: "2-digit", minute: "2-digit" });
function openDay(id) {
  state.day = { queue: id, site: state.site, intervals: [], loadedAt: 0, error: "",
                agents: null, agentsAt: 0, agentsError: "" };
  loadDay();
  loadDayAgents(state.day);
}
async function loadDay() {
  const day = state.day;
  if (!day) return;
  day.loadedAt = Date.now();
  const q = state.queues[day.queue];
  const from = q && q.today && q.today.start ? q.today.start : new Date(Date.now() - DAY_MS).toISOString();
  const query = new URLSearchParams({ queue_id: day.queue, from });
  if (day.site) query.set("site", day.site);
  try {
    const body = await call("GET", "/v1/intervals?" + query.toString());
    if (state.day === day) { day.intervals = body.intervals; day.from = body.from; day.error = ""; }
  } catch (e) {
    if (state.day === day) day.error = "intervals unavailable";
    console.warn(e);
  }
  render();
}
// one chart: bars (`bar`) and lines (`line`, dashed `ref`), values by slot, 0..top
function dayChart(slots, top, series) {
  const box = svg("svg", { viewBox: "0 0 100 40", preserveAspectRatio: "none", role: "img" });
  const W = 96, H = 34, x0 = 4, n = slots.length || 1;
  const x = i => x0 + (W * i) / n, y = v => 2 + H - (H * Math.min(v, top)) / (top || 1);
  box.append(svg("line", { x1: x0, x2: x0 + W, y1: y(0), y2: y(0), stroke: "#30363d", "stroke-width": ".4" }));
  for (const s of series) {
    if (s.kind === "bar") {
      slots.forEach((r, i) => {
        const v = s.value(r);
        if (!num(v)) return;
        box.append(svg("rect", { x: x(i) + 0.1, width: Math.max(0.2, W / n - 0.2), y: y(v), height: y(0) - y(v),
                                  fill: s.colour }));
      });
      continue;
    }
    let run = [];
    const flush = () => {
      if (run.length) box.append(svg("polyline", { points: run.join(" "), fill: "none", stroke: s.colour,
        "stroke-width": s.kind === "ref" ? "1" : "1.5", "stroke-dasharray": s.kind === "ref" ? "1.5 1" : "none",
        "vector-effect": "non-scaling-stroke" }));
      run = [];
    };
    slots.forEach((r, i) => {
      const v = s.value(r);
      if (num(v)) run.push(`${(x(i) + W / n / 2).toFixed(2)},${y(v).toFixed(2)}`);
      else flush();
    });
    flush();
  }
  return box;
}
function figure(caption, chart) { return el("figure", {}, chart, el("figcaption", {}, ...caption)); }
function renderDay() {
  const panel = $("intraday"), day = state.day;
  panel.hidden = !day;
  if (!day) { panel.replaceChildren(); return; }
  if (day.site !== state.site) { openDay(day.queue); return; }  // the site picked changed
  if (Date.now() - day.loadedAt > 60_000) loadDay();  // an interval closes every 15 minutes
  if (day.agentsAt && Date.now() - day.agentsAt > AGENTS_EVERY_MS) loadDayAgents(day);
  const q = state.queues[day.queue] || {}, s = settingsOf(day.queue), t = q.today || {};
  const start = Date.parse(day.from || t.start || new Date(Date.now() - DAY_MS).toISOString());
  const slots = Array.from({ length: 96 }, () => null);
  for (const r of day.intervals) {
    const i = Math.round((Date.parse(r.start) - start) / SLOT_MS);
    if (i >= 0 && i < 96) slots[i] = r;
  }
  const last = slots.reduce((k, r, i) => (r ? i : k), -1);
  const shown = slots.slice(0, Math.max(16, last + 2));  // at least four hours wide
  const v = k => r => (r ? r[k] : null);
  const most = k => Math.max(0, ...day.intervals.map(r => (num(r[k]) ? r[k] : 0)));
  const arrivalsTop = Math.max(1, most("arrivals"), most("forecast"));
  const agentsTop = Math.max(1, most("agents_required"), most("agents_staffed_avg"));
  const hour = shown.length / 4;
  const item = (label, field, value) => el("span", {}, label, el("b", { data: { field } }, value));
  panel.replaceChildren(
    el("div", { class: "head" },
      el("h3", {}, `${day.queue}${day.site ? " at " + day.site : ""}: today in 15-minute intervals`),
      item("answered within target", "today_answer_rate", pct(t.answer_rate)),
      item("calls", "today_arrivals", num(t.arrivals) ? t.arrivals : "–"),
      item("forecast", "today_forecast", num(t.forecast) ? Math.round(t.forecast) : "–"),
      item("abandoned", "today_abandon_rate", pct(t.abandon_rate)),
      item("ASA", "today_asa_s", dur(t.asa_s)),
      day.error ? el("span", { class: "warn" }, day.error) : null,
      el("button", { type: "button", data: { close: "day" } }, "close")),
    el("div", { class: "charts" },
      figure([el("span", { class: "k1" }, "calls"), " against ", el("span", { class: "k2" }, "forecast - -"),
              ` (0 to ${Math.round(arrivalsTop)} a quarter hour)`],
        dayChart(shown, arrivalsTop, [
          { kind: "bar", value: v("arrivals"), colour: "#1f6feb" },
          { kind: "ref", value: v("forecast"), colour: "#e6edf3" }])),
      figure([el("span", { class: "k1" }, "answered within target"), ` against target ${pct0(s.sl_target)} - - (0 to 100%)`],
        dayChart(shown, 1, [
          { kind: "ref", value: () => s.sl_target, colour: "#e6edf3" },
          { kind: "line", value: v("answer_rate"), colour: "#79c0ff" }])),
      figure([el("span", { class: "k1" }, "agents staffed"), " against ", el("span", { class: "k2" }, "required - -"),
              ` (0 to ${Math.round(agentsTop)})`],
        dayChart(shown, agentsTop, [
          { kind: "line", value: v("agents_staffed_avg"), colour: "#79c0ff" },
          { kind: "ref", value: v("agents_required"), colour: "#e6edf3" }]))),
    el("div", { class: "dim", data: { field: "day_span" } },
      `${hhmm(start)} to ${hhmm(start + shown.length * SLOT_MS)}, ` +
      `${day.intervals.length} interval${day.intervals.length === 1 ? "" : "s"} closed, ${hour.toFixed(0)} h shown`),
    agentsSection(day));
}

function render() {
  keepButtons();
  const queues = shownQueues(), moved = moves();
  renderSites();
  renderTotals(queues);
  renderAlerts();
  renderDay();
  renderActions();  // before the tiles: the space left for them is known only then
  $("tiles").replaceChildren(...queues.map(q => tile(q, moved)));
  layout(queues.length);
}

// ---- the API
async function call(method, path) {
  const r = await fetch(path, { method, headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error(method + " " + path + ": " + r.status);
  return r.json();
}
async function refreshAlerts() { state.alerts = (await call("GET", "/v1/alerts?state=active")).alerts; render(); }
async function refreshActions() { state.actions = (await call("GET", "/v1/actions")).actions; render(); }
async function loadSettings(id) {
  state.settings[id] = state.settings[id] || {};
  try { state.settings[id] = await call("GET", `/v1/settings/queues/${encodeURIComponent(id)}`); render(); }
  catch (e) { console.warn(e); }
}

document.addEventListener("click", async ev => {
  const name = ev.target.closest("[data-day]");
  if (name) { openDay(name.dataset.day); return; }
  const t = ev.target.closest("button");
  if (!t) return;
  if (t.dataset.close === "day") { state.day = null; render(); return; }
  try {
    if (t.dataset.ack) { await call("POST", `/v1/alerts/${encodeURIComponent(t.dataset.ack)}/ack`); await refreshAlerts(); }
    for (const [verb, ids] of [["approve", t.dataset.approve], ["reject", t.dataset.reject], ["undo", t.dataset.undo]]) {
      if (!ids) continue;
      const done = await Promise.allSettled(ids.split("\n").map(
        id => call("POST", `/v1/actions/${encodeURIComponent(id)}/${verb}`)));
      for (const d of done) if (d.status === "rejected") console.warn(d.reason);
      await refreshActions();
    }
  } catch (e) { console.warn(e); }
});
$("site").addEventListener("change", ev => { state.site = ev.target.value; render(); });
addEventListener("resize", render);

function applyQueues(queues) {
  for (const q of queues) {
    if (!(q.queue_id in state.settings)) loadSettings(q.queue_id);
    state.queues[q.queue_id] = q;
    const w = (q.windows || {})[primaryKey(q)] || {};
    const h = state.history[q.queue_id] = state.history[q.queue_id] || [];
    if (!h.length || h[h.length - 1][0] < q.as_of) h.push([q.as_of, w.answer_rate_live]);
    const cutoff = Date.parse(q.as_of) - 30 * 60 * 1000;
    while (h.length && Date.parse(h[0][0]) < cutoff) h.shift();
  }
  state.lastTick = Date.now();
  if (Date.now() - state.agentsAt > AGENTS_EVERY_MS) loadAgents();
  render();
}

function refused(why) {
  $("conn").textContent = why;
  sessionStorage.removeItem("floorwatch-token");
  askToken();
}

async function connect() {
  const conn = $("conn");
  let ticket;
  try {
    const r = await fetch("/v1/ws/ticket", { method: "POST", headers: { Authorization: "Bearer " + token } });
    if (r.status === 401) { refused("token refused"); return; }
    if (!r.ok) throw new Error("ticket: " + r.status);
    const body = await r.json();
    ticket = body.ticket;
    state.role = body.role;
    if (urlToken && token === urlToken && body.role !== "viewer") {
      // a lead's or admin's token does not belong in an address bar: take it out
      history.replaceState(null, "", location.pathname + (state.site ? "?site=" + encodeURIComponent(state.site) : ""));
      sessionStorage.setItem("floorwatch-token", token);
      $("url-warning").hidden = false;
      $("url-warning").textContent = `${body.role === "admin" ? "an" : "a"} ${body.role} token was in the address; wall displays take a viewer token`;
    }
  } catch (e) {
    conn.textContent = "reconnecting…";
    setTimeout(connect, 2000);
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws/board?ticket=${encodeURIComponent(ticket)}`);
  ws.onopen = () => { conn.textContent = "live"; };
  ws.onmessage = ev => {
    const m = JSON.parse(ev.data);
    if (m.type === "state") {
      state.tickS = m.tick_s; state.role = m.role; state.history = m.history || {};
      state.alerts = m.alerts; state.actions = m.actions;
      applyQueues(m.queues);
    } else if (m.type === "tick") {
      applyQueues(m.queues);
    } else if (m.type === "alert") {
      refreshAlerts().catch(e => console.warn(e));
    } else if (m.type === "action") {
      refreshActions().catch(e => console.warn(e));
    }
  };
  ws.onclose = () => {
    conn.textContent = "reconnecting…";
    setTimeout(connect, 1000);
  };
}

function askToken() {
  $("login").classList.add("on");
  $("login-form").onsubmit = ev => {
    ev.preventDefault();
    token = $("token-input").value.trim();
    sessionStorage.setItem("floorwatch-token", token);
    $("login").classList.remove("on");
    connect();
  };
}

setInterval(() => {
  $("clock").textContent = hhmmss(new Date());
  const age = (Date.now() - state.lastTick) / 1000;
  const stale = !!state.lastTick && age > 3 * state.tickS;
  if (stale !== $("stale").classList.contains("on")) {
    $("stale").classList.toggle("on", stale);
    render();  // the banner takes room from the tiles
  }
  $("stale-age").textContent = Math.round(age) + " s";
}, 500);
$("clock").textContent = hhmmss(new Date());

if (token) connect(); else askToken();
})();
