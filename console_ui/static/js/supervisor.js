// Supervisor console: KPI tiles per grade, answering, queue, units, calls per 15 min.
import { get, post, requireSession } from "./api.js";
import {
  $,
  esc,
  fmtDuration,
  fmtTime,
  gradeBadge,
  perFrame,
  showConnState,
  showError,
  statusChip,
  throttle,
  topbar,
} from "./common.js";
import { EmergencyAlarms } from "./emergency-alarm.js";
import { unlockAudioOnFirstGesture } from "./sound.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["supervisor", "admin"]);
topbar("Supervisor · KPIs", s, { searchBox: true });
unlockAudioOnFirstGesture();

// An officer's emergency stops this console too, until someone acknowledges it.
const emergencies = new EmergencyAlarms({ post });
const loadAlarms = () => {
  emergencies.beginLoad();
  return get("/api/alarms")
    .then((list) => emergencies.load(list))
    .catch(showError);
};

let grades = [];
let last = null;
let cost = 0; // ms the last /api/stats took

// /api/stats is a real query over the window. Events ask for it again at once when it has
// been quiet, otherwise at most once per gap (1 s, or 10 × what it costs, up to 10 s), so a
// steady stream of calls neither starves the tiles nor turns into a request per event.
const MIN_GAP_MS = 1000;
const MAX_GAP_MS = 10000;
const PERIOD_MS = 15000; // time alone moves the figures (windows slide)

const pct = (v) => (v == null ? "—" : `${Math.round(v * 100)}%`);
const dur = (v) => (v == null ? "—" : fmtDuration(v));

async function load() {
  if (!grades.length) grades = await get("/api/grades");
  const hours = $("#hours").value;
  const t0 = performance.now();
  last = await get(`/api/stats?hours=${hours}`);
  cost = performance.now() - t0;
  render(last);
}
const reload = throttle(
  () => load().catch(showError),
  () => Math.min(MAX_GAP_MS, Math.max(MIN_GAP_MS, cost * 10)),
);

function render(st) {
  $("#grades").innerHTML = grades
    .map((g) => {
      const k = st.grades[g.code] || { count: 0, excluded: 0 };
      const share = k.share_within_target;
      const cls = share == null ? "" : share >= 0.9 ? "ok" : "bad";
      const target = g.target_s ? `target ${Math.round(g.target_s / 60)} min` : "no timed target";
      return `<div class="panel tile" data-grade="${esc(g.code)}">
        <h2>${gradeBadge(g.code)} ${esc(g.name)} <span class="hint">${esc(target)}</span></h2>
        <div class="big ${cls}" data-kpi="share">${g.target_s ? pct(share) : "—"}</div>
        <div class="hint">${g.target_s ? "attended within target" : ""}</div>
        <dl>
          <dt>Incidents</dt><dd data-kpi="count">${k.count ?? 0}</dd>
          <dt>Open</dt><dd data-kpi="open">${k.open ?? 0}</dd>
          <dt>Median</dt><dd data-kpi="median">${dur(k.median_s)}</dd>
          <dt>90th centile</dt><dd data-kpi="p90">${dur(k.p90_s)}</dd>
          <dt>Counted / excluded</dt><dd data-kpi="excluded">${k.response_counted ?? 0} / ${k.excluded ?? 0}${
            k.excluded_reasons && Object.keys(k.excluded_reasons).length
              ? ` <span class="hint">(${Object.entries(k.excluded_reasons).map(([r, n]) => `${esc(r)} ${n}`).join(", ")})</span>`
              : ""
          }</dd>
        </dl></div>`;
    })
    .join("");
  const a = st.answering || {};
  const aok = a.share_within_10s == null ? "" : a.share_within_10s >= (a.target_share ?? 0.9) ? "ok" : "bad";
  $("#answering").innerHTML = `<h2>999 answered within 10 s</h2>
    <div class="big ${aok}" data-kpi="answering">${pct(a.share_within_10s)}</div>
    <div class="hint">${a.answered_within_10s ?? 0} of ${a.calls ?? 0} calls · target ${pct(a.target_share)}</div>`;
  $("#pending").innerHTML = `<h2>Pending queue</h2>
    <div class="big" data-kpi="pending">${st.pending_queue ?? 0}</div>
    <div class="hint">incidents waiting for a unit</div>`;
  const order = ["available", "dispatched", "en_route", "on_scene", "unavailable", "off_duty"];
  const us = st.units_by_status || {};
  $("#unit-status").innerHTML = `<h2>Units by status</h2><div class="status-bars">${order
    .filter((k) => us[k] != null)
    .map((k) => `<span data-status="${k}">${statusChip(k)} <strong>${us[k]}</strong></span>`)
    .join("")}</div>`;
  drawChart(st.calls_per_15min || []);
  $("#cleaning").textContent = st.cleaning
    ? `Response times under ${st.cleaning.min_response_s} s or over ${Math.round(st.cleaning.max_response_s / 60)} min, or with out-of-order timestamps, are excluded from the figures (and counted).`
    : "";
  $("#updated").textContent = `updated ${fmtTime(st.until)}`;
}

/** A hand-drawn SVG bar chart: one bar per quarter hour, hour ticks underneath. */
function drawChart(series) {
  const el = $("#chart");
  const W = el.clientWidth || 1000;
  const H = el.clientHeight || 200;
  const padL = 34;
  const padB = 20;
  const padT = 8;
  const max = Math.max(1, ...series.map((p) => p.calls));
  const n = Math.max(1, series.length);
  const bw = (W - padL - 4) / n;
  const y = (v) => padT + (H - padT - padB) * (1 - v / max);
  const bars = series
    .map((p, i) => {
      const x = padL + i * bw;
      const top = y(p.calls);
      return p.calls
        ? `<rect class="bar" x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(H - padB - top).toFixed(1)}"><title>${fmtTime(p.at)}: ${p.calls} calls</title></rect>`
        : "";
    })
    .join("");
  const step = Math.max(1, Math.ceil(n / 12 / 4) * 4);
  const ticks = series
    .map((p, i) => {
      const x = padL + i * bw;
      if (i % step || x > W - 40) return "";
      const label = new Date(p.at).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
      return `<text x="${x.toFixed(1)}" y="${H - 5}">${label}</text>`;
    })
    .join("");
  el.innerHTML = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" data-total="${series.reduce((t, p) => t + p.calls, 0)}">
    <line class="axis" x1="${padL}" y1="${H - padB}" x2="${W}" y2="${H - padB}"/>
    <line class="axis" x1="${padL}" y1="${padT}" x2="${padL}" y2="${H - padB}"/>
    <text x="4" y="${padT + 10}">${max}</text><text x="4" y="${H - padB}">0</text>
    ${bars}${ticks}</svg>`;
}

$("#hours").addEventListener("change", reload);
window.addEventListener("resize", perFrame(() => last && drawChart(last.calls_per_15min || [])));

const RELEVANT = /^(incident\.|unit\.status|unit\.assigned|call\.)/;
const stream = new EventStream({
  onEvent: (ev) => {
    if (ev.type === "alarm.raised" || ev.type === "alarm.cleared") emergencies.apply(ev);
    if (RELEVANT.test(ev.type)) reload();
  },
  onState: showConnState,
  onResync: () => {
    reload();
    loadAlarms();
  },
});
stream.start().then(() => {
  reload();
  loadAlarms();
});
setInterval(reload, PERIOD_MS);
