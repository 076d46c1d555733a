// Dispatcher console: live incident queue, unit board, map, recommendations and actions.
import { ApiError, get, post, requireSession } from "./api.js";
import {
  $,
  GRADE_ORDER,
  ageText,
  countdownHtml,
  debounce,
  esc,
  fmtTime,
  gradeBadge,
  showConnState,
  showError,
  statusChip,
  tickCountdowns,
  toast,
  topbar,
} from "./common.js";
import { CadMap } from "./map.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["dispatcher", "supervisor", "admin"]);
topbar("Dispatch", s);
tickCountdowns();

const incidents = new Map(); // id -> incident (open only)
let units = [];
let alarms = [];
let selectedId = null;
let detail = null;
let recs = null;
let conflict = null; // {detail, next} after a 409
const fresh = new Set(); // ids to flash once

const map = new CadMap($("#map"), { zoom: 10 });
map.onIncidentClick = (id) => select(id);
map.loadAreas().catch(showError);

// ---- data ----------------------------------------------------------------------------
async function loadIncidents() {
  const list = await get("/api/incidents?status=open&limit=1000");
  incidents.clear();
  for (const inc of list) incidents.set(inc.id, inc);
  renderQueue();
}

async function loadUnits() {
  units = await get("/api/units");
  renderUnits();
}

async function loadAlarms() {
  alarms = await get("/api/alarms");
  renderAlarms();
}

async function loadDetail() {
  if (selectedId === null) return;
  const id = selectedId;
  try {
    const [d, r] = await Promise.all([
      get(`/api/incidents/${id}`),
      get(`/api/incidents/${id}/recommendations`).catch(() => null),
    ]);
    if (id !== selectedId) return;
    detail = d;
    recs = r;
    renderDetail();
  } catch (err) {
    showError(err);
  }
}

const refresh = debounce(() => {
  loadIncidents().catch(showError);
  loadUnits().catch(showError);
}, 250);
const refreshDetail = debounce(() => loadDetail(), 300);
const refreshAlarms = debounce(() => loadAlarms().catch(showError), 300);

// ---- events --------------------------------------------------------------------------
function onEvent(ev) {
  const d = ev.data || {};
  if (ev.type === "incident.created" && d.status !== "closed") {
    // Shown at once from the event; the refetch below fills in the rest.
    incidents.set(ev.incident_id, {
      id: ev.incident_id,
      ref: d.ref,
      grade: d.grade,
      type_code: d.type_code,
      status: d.status,
      lat: d.lat,
      lng: d.lng,
      area_code: d.area_code,
      target_at: d.target_at,
      created_at: ev.at,
      units: [],
      ...(incidents.get(ev.incident_id) || {}),
    });
    fresh.add(ev.incident_id);
    renderQueue();
  } else if (ev.type === "incident.closed" || ev.type === "incident.merged") {
    incidents.delete(ev.incident_id);
    renderQueue();
  }
  if (ev.type.startsWith("alarm.")) refreshAlarms();
  if (ev.type.startsWith("incident.") || ev.type.startsWith("unit.") || ev.type.startsWith("call.")) {
    refresh();
  }
  if (selectedId !== null && ev.incident_id === selectedId) refreshDetail();
  // Any unit moving may change who is recommended for the selected incident.
  else if (selectedId !== null && ev.type.startsWith("unit.")) refreshDetail();
}

const stream = new EventStream({
  onEvent,
  onState: showConnState,
  onResync: () => {
    refresh();
    refreshAlarms();
  },
});

// ---- rendering -----------------------------------------------------------------------
function sortedIncidents() {
  return [...incidents.values()].sort(
    (a, b) =>
      (GRADE_ORDER[a.grade] || 9) - (GRADE_ORDER[b.grade] || 9) ||
      new Date(a.created_at) - new Date(b.created_at) ||
      a.id - b.id,
  );
}

function renderQueue() {
  const list = sortedIncidents();
  const tbody = $("#queue tbody");
  tbody.innerHTML = list
    .map((i) => {
      const unitsText = (i.units || []).map((u) => u.callsign || u).join(", ");
      const cls = [i.id === selectedId ? "selected" : "", fresh.has(i.id) ? "new" : ""].join(" ");
      return `<tr data-id="${i.id}" data-ref="${esc(i.ref)}" class="${cls}" tabindex="0">
        <td>${gradeBadge(i.grade)}</td>
        <td>${esc(i.ref)}</td>
        <td>${esc(i.type_name || i.type_code)}</td>
        <td>${statusChip(i.status)}</td>
        <td>${esc(unitsText)}</td>
        <td>${ageText(i.created_at)}</td>
        <td>${countdownHtml(i.target_at)}</td></tr>`;
    })
    .join("");
  fresh.clear();
  $("#queue-count").textContent = String(list.length);
  $("#queue-empty").style.display = list.length ? "none" : "";
  map.setIncidents(list, selectedId);
  if (selectedId !== null && !incidents.has(selectedId) && detail && detail.status !== "closed") {
    // It left the queue (closed or merged): the detail refetch shows why.
    refreshDetail();
  }
}

$("#queue tbody").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (tr) select(Number(tr.dataset.id));
});
$("#queue tbody").addEventListener("keydown", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (!tr) return;
  if (e.key === "Enter") select(Number(tr.dataset.id));
  if (e.key === "ArrowDown" && tr.nextElementSibling) tr.nextElementSibling.focus();
  if (e.key === "ArrowUp" && tr.previousElementSibling) tr.previousElementSibling.focus();
});
setInterval(() => {
  for (const tr of document.querySelectorAll("#queue tbody tr[data-id]")) {
    const inc = incidents.get(Number(tr.dataset.id));
    if (inc) tr.children[5].textContent = ageText(inc.created_at);
  }
}, 5000);

// Committed units first: those are what a dispatcher tracks; the available pool is last.
const STATUS_ORDER = ["dispatched", "en_route", "on_scene", "unavailable", "available", "off_duty"];
function renderUnits() {
  const groups = new Map(STATUS_ORDER.map((st) => [st, []]));
  for (const u of units) (groups.get(u.status) || groups.set(u.status, []).get(u.status)).push(u);
  const html = [];
  for (const [st, list] of groups) {
    list.sort((a, b) => a.callsign.localeCompare(b.callsign));
    const body =
      st === "available" || st === "off_duty" || st === "unavailable"
        ? `<div class="unit-chips">${list
            .map((u) => `<span class="chip st-${st}" data-unit="${esc(u.callsign)}" title="${esc(u.unit_type)} · ${esc(u.home_station || "")}">${esc(u.callsign)}</span>`)
            .join("")}</div>`
        : `<div class="unit-rows">${list
            .map(
              (u) =>
                `<div data-unit="${esc(u.callsign)}" data-status="${st}"><strong>${esc(u.callsign)}</strong> → ${gradeBadge(u.incident_grade)} ${esc(u.incident_ref || "")}</div>`,
            )
            .join("")}</div>`;
    html.push(`<div class="unit-group" data-group="${st}">
      <h3>${statusChip(st)} <span class="count">${list.length}</span></h3>${list.length ? body : ""}</div>`);
  }
  $("#units").innerHTML = html.join("");
  map.setUnits(units);
}

function renderAlarms() {
  $("#alarm-count").textContent = String(alarms.length);
  $("#alarms").innerHTML = alarms.length
    ? alarms
        .map(
          (a) =>
            `<li data-incident="${a.incident_id ?? ""}">${esc(a.message)} <span class="hint">${fmtTime(a.raised_at)}</span></li>`,
        )
        .join("")
    : `<li class="empty" style="list-style:none">No alarms.</li>`;
}
$("#alarms").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-incident]");
  if (li && li.dataset.incident) select(Number(li.dataset.incident));
});

function select(id) {
  selectedId = id;
  conflict = null;
  detail = null;
  recs = null;
  $("#detail").innerHTML = `<div class="empty">Loading…</div>`;
  renderQueue();
  const inc = incidents.get(id);
  if (inc) map.focus(inc.lat, inc.lng, 12);
  loadDetail();
}

function recRow(r, i) {
  const divert = r.divert_from != null || /divert/i.test(r.label || "");
  const eta = r.eta_s != null ? `${Math.round(r.eta_s / 60)} min` : "—";
  const dist = r.distance_m != null ? `${(r.distance_m / 1000).toFixed(1)} km` : "—";
  return `<tr data-unit-id="${r.unit_id}" data-callsign="${esc(r.callsign)}">
    <td><strong>${esc(r.callsign)}</strong></td>
    <td>${esc(r.unit_type)}</td>
    <td>${esc(r.label || r.status)}${r.stale ? ` <span class="stale" title="position is old">stale position</span>` : ""}</td>
    <td>${eta}</td><td>${dist}</td><td>${esc(r.fills || "")}</td>
    <td>${
      divert
        ? `<button class="danger" data-assign="${r.unit_id}" data-divert="1">Divert</button>`
        : `<button class="primary" data-assign="${r.unit_id}" ${i === 0 ? 'data-first="1"' : ""}>Assign</button>`
    }</td></tr>`;
}

function renderDetail() {
  const d = detail;
  if (!d) return;
  const open = d.status !== "closed";
  const asg = (d.assignments || [])
    .map(
      (a) => `<tr><td><strong>${esc(a.callsign)}</strong></td><td>${statusChip(a.status)}</td>
        <td>sent ${fmtTime(a.dispatched_at)}</td><td>${a.en_route_at ? "en route " + fmtTime(a.en_route_at) : ""}</td>
        <td>${a.on_scene_at ? "on scene " + fmtTime(a.on_scene_at) : ""}</td><td>${a.cleared_at ? "clear " + fmtTime(a.cleared_at) : ""}</td></tr>`,
    )
    .join("");
  const all = recs ? recs.recommendations || [] : [];
  const shortfalls = recs && recs.shortfalls ? recs.shortfalls : [];
  const remarks = (d.timeline || []).filter((e) => e.type === "incident.remark").slice(-3);
  $("#detail").innerHTML = `
    <h3 data-incident-id="${d.id}">${gradeBadge(d.grade)} ${esc(d.ref)} · ${esc(d.type_name || d.type_code)} ${statusChip(d.status)}</h3>
    <div class="meta">${esc(d.area || d.area_code || "")} · ${d.lat?.toFixed?.(4) ?? ""}, ${d.lng?.toFixed?.(4) ?? ""}
      ${d.address ? "· " + esc(d.address) : ""} · received ${fmtTime(d.call_received_at)}
      · ${(d.calls || []).length} call(s) · target ${open ? countdownHtml(d.target_at) : "—"}
      ${d.result_code ? "· result " + esc(d.result_code) : ""}</div>
    <div class="desc">${esc(d.description || "")}</div>
    ${remarks.map((r) => `<div class="hint">📝 ${esc(r.data.text)} — ${esc(r.actor)} ${fmtTime(r.at)}</div>`).join("")}
    ${asg ? `<h2>Assignments</h2><table><tbody>${asg}</tbody></table>` : ""}
    ${
      conflict
        ? `<div class="conflict" role="alert" id="conflict"><strong>Not assigned:</strong> ${esc(conflict.detail)}
          ${
            conflict.next
              ? `<div>Next recommendation: <strong>${esc(conflict.next.callsign)}</strong>
                 (${Math.round((conflict.next.eta_s || 0) / 60)} min)
                 <button class="primary" data-assign="${conflict.next.unit_id}" id="assign-next">Assign ${esc(conflict.next.callsign)}</button></div>`
              : "<div>No other unit to recommend.</div>"
          }</div>`
        : ""
    }
    ${
      open
        ? `<h2>Recommended units</h2>
      ${shortfalls.map((sf) => `<div class="shortfall">⚠ ${esc(typeof sf === "string" ? sf : sf.message || JSON.stringify(sf))}</div>`).join("")}
      ${
        all.length
          ? `<table id="recs"><thead><tr><th>Unit</th><th>Type</th><th>State</th><th>ETA</th><th>Dist</th><th>Fills</th><th></th></tr></thead>
             <tbody>${all.map(recRow).join("")}</tbody></table>`
          : `<div class="empty">No units to recommend.</div>`
      }
      <div class="forms">
        <form id="f-remark"><input name="text" placeholder="Add a remark" aria-label="Remark" required><button>Remark</button></form>
        <form id="f-grade"><select name="grade" aria-label="New grade">${["I", "S", "E", "R"]
          .map((g) => `<option ${g === d.grade ? "selected" : ""}>${g}</option>`)
          .join("")}</select><input name="reason" placeholder="Reason for regrade" aria-label="Regrade reason" required minlength="3"><button>Regrade</button></form>
        <form id="f-close"><input name="result_code" list="result-codes" placeholder="Result code" aria-label="Result code" required><input name="remarks" placeholder="Closing remarks" aria-label="Closing remarks"><button class="danger">Close</button></form>
      </div>`
        : ""
    }`;
}

$("#detail").addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-assign]");
  if (!b || selectedId === null) return;
  b.disabled = true;
  await assign(selectedId, Number(b.dataset.assign), b.dataset.divert === "1");
});

async function assign(incidentId, unitId, divert) {
  try {
    const res = await post(`/api/incidents/${incidentId}/assignments`, { unit_id: unitId, divert });
    conflict = null;
    toast(`${res.callsign} assigned to ${detail ? detail.ref : incidentId}`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      conflict = { detail: err.message, next: err.body.next_recommendation || null };
    } else {
      showError(err);
    }
  }
  await loadDetail();
  refresh();
}

$("#detail").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const data = Object.fromEntries(new FormData(f).entries());
  const id = selectedId;
  try {
    if (f.id === "f-remark") {
      await post(`/api/incidents/${id}/remarks`, { text: data.text });
      toast("Remark added", "ok");
    } else if (f.id === "f-grade") {
      await post(`/api/incidents/${id}/grade`, { grade: data.grade, reason: data.reason });
      toast(`Regraded to ${data.grade}`, "ok");
    } else if (f.id === "f-close") {
      await post(`/api/incidents/${id}/close`, {
        result_code: data.result_code.trim().toUpperCase(),
        remarks: data.remarks || "",
      });
      toast("Incident closed", "ok");
    }
    await loadDetail();
    refresh();
  } catch (err) {
    showError(err);
  }
});

// ---- start ---------------------------------------------------------------------------
async function start() {
  await stream.start();
  await Promise.all([loadIncidents(), loadUnits(), loadAlarms()]).catch(showError);
}
start();
// A slow safety net: events drive the board, this only corrects drift.
setInterval(() => {
  refresh();
  refreshAlarms();
}, 30000);
window.__cadDispatcher = { incidents, select };
