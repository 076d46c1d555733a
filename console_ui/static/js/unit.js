// Unit terminal (phone-sized, installable): own status, current job, big status buttons,
// position, remarks and the emergency button.
//
// It is made for bad signal. The shell comes from the service worker's cache (sw.js); the
// last snapshot of the unit is kept for the tab (sessionStorage) and drawn at once; every
// press goes through the outbox (outbox.js), which keeps it on the device until the server
// has it. The view shows the unit as the officer left it: queued presses are drawn as
// done, and listed under "Waiting to send" until they are.
import { ApiError, get, requireSession } from "./api.js";
import { $, esc, fmtTime, gradeBadge, showConnState, showError, statusChip, toast, topbar } from "./common.js";
import { Outbox } from "./outbox.js";
import { markerBanner } from "./retrieval.js";
import { audioReady, ring, unlockAudioOnFirstGesture } from "./sound.js";
import { EventStream } from "./stream.js";

if ("serviceWorker" in navigator) {
  navigator.serviceWorker
    .register("/console/unit/sw.js", { scope: "/console/unit/" })
    .catch((e) => console.warn("service worker not registered:", e.message));
}
unlockAudioOnFirstGesture();

const s = await requireSession(["unit"]);
topbar("Unit", s);

const SNAPSHOT_KEY = `cad.unit.me.${s.username}`;
const ACKED_KEY = `cad.unit.acked.${s.username}`;
const EMERGENCY_KEY = `cad.unit.emergency.${s.username}`;
const HOLD_MS = 2000; // emergency: press and hold this long…
const DOUBLE_MS = 1500; // …or press twice within this
const RING_EVERY_MS = 4000;
const VIBRATE = [400, 150, 400, 150, 700];
const ASSIST_TYPE = "OFFICER_ASSIST"; // another officer's emergency: sent to help

function readJson(store, key) {
  try {
    return JSON.parse(store.getItem(key) || "null");
  } catch {
    return null;
  }
}

let me = readJson(sessionStorage, SNAPSHOT_KEY); // the last /api/units/me, events applied
const unitId = s.unit_id ?? (me && me.id);
// Assignments acknowledged on this device (maybe still queued): their alert is done.
const acked = new Set(readJson(sessionStorage, ACKED_KEY) || []);
// This unit's open emergency as the device knows it: {state: queued | open, pressed_at,
// and the server's answer once it has one}. Kept across sign-ins: it is what the officer
// must see first.
let emergency = readJson(localStorage, EMERGENCY_KEY);
let others = { incidentId: null, list: [] }; // the other units sent to the job
const refused = []; // {label, detail, pressed_at}: presses the server would not take
let lastFix = null; // the device's latest position: {lat, lng, at}
let typeNames = {};

function saveSnapshot() {
  try {
    if (me) sessionStorage.setItem(SNAPSHOT_KEY, JSON.stringify(me));
  } catch {
    // A full store only loses the offline copy.
  }
}

function markAcked(assignmentId) {
  acked.add(assignmentId);
  sessionStorage.setItem(ACKED_KEY, JSON.stringify([...acked].slice(-50)));
}

function setEmergency(value) {
  emergency = value;
  if (value) localStorage.setItem(EMERGENCY_KEY, JSON.stringify(value));
  else localStorage.removeItem(EMERGENCY_KEY);
  scheduleRender();
}

get("/api/incident-types")
  .then((list) => {
    typeNames = Object.fromEntries(list.map((t) => [t.code, t.name]));
    if (me) scheduleRender();
  })
  .catch(() => {});

// ---- the outbox ---------------------------------------------------------------------
const outbox = new Outbox({
  owner: s.username,
  onChange: () => scheduleRender(),
  onSent,
  onRefused,
});

function onSent(item, res) {
  switch (item.kind) {
    case "status":
      if (me && res) {
        // The answer says what changed; its event may come before or after, to the same effect.
        apply({ type: "unit.status", unit_id: me.id, data: { to: res.status, ...res } });
      }
      toast(`${(me && me.callsign) || s.username}: ${item.label}`, "ok");
      break;
    case "ack":
      if (me && me.job && me.job.assignment_id === item.body.assignment_id) {
        me.job.acknowledged_at = res.acknowledged_at;
      }
      break;
    case "remark":
      toast("Remark added", "ok");
      break;
    case "position":
      $("#pos-state").textContent = `Position sent ${new Date().toLocaleTimeString("en-GB")}${
        lastFix && lastFix.accuracy != null ? ` (±${Math.round(lastFix.accuracy)} m)` : ""
      }`;
      break;
    case "emergency":
      setEmergency({ ...(emergency || {}), ...res, state: "open" });
      if (navigator.vibrate) navigator.vibrate(200);
      break;
    case "emergency_cancel":
      setEmergency(null);
      toast("Emergency cancelled", "ok");
      break;
    default:
      break;
  }
  scheduleRender();
}

function onRefused(item, err) {
  if (item.kind === "emergency_cancel" && err.status === 409) {
    setEmergency(null); // none open any more: nothing to cancel
    toast(err.message, "ok");
    return;
  }
  if (item.kind === "position") {
    $("#pos-state").textContent = `Position not sent: ${err.message}`;
    return;
  }
  refused.push({ kind: item.kind, label: item.label, detail: err.message, pressed_at: item.pressed_at });
  if (item.kind === "emergency") setEmergency(null); // the officer can press again
  toast(`${item.label} not accepted: ${err.message}`, "error", err.errors || []);
  if (["status", "ack", "remark"].includes(item.kind)) load().catch(showError); // read what is true now
  scheduleRender();
}

// ---- the snapshot -------------------------------------------------------------------
// Read at start, on resync and when a new job arrives (its details are not in the event);
// everything else is applied from the events themselves. One read at a time: events
// during a read ask for exactly one more read after it.
let loading = null;
let loadAgain = false;
function load() {
  if (loading) {
    loadAgain = true;
    return loading;
  }
  loading = (async () => {
    try {
      // Bounded: a steady stream of events cannot keep this reading for ever.
      for (let reads = 0; reads < 3 && (reads === 0 || loadAgain); reads += 1) {
        loadAgain = false;
        me = await get("/api/units/me");
      }
    } finally {
      loading = null;
    }
    if (me.emergency !== undefined) {
      // A server that tells the unit its open emergency is the authority on it.
      if (me.emergency) setEmergency({ ...(emergency || {}), ...me.emergency, state: "open" });
      else if (emergency && emergency.state === "open") setEmergency(null);
    }
    saveSnapshot();
    othersSoon();
    scheduleRender();
  })();
  return loading;
}

// The other units on the job, from the incident's detail: read when the job changes and
// when one of them moves (their events reach this unit through its job).
let othersLoading = null;
let othersAgain = false;
function othersSoon() {
  const id = me && me.job ? me.job.incident.id : null;
  if (id === null) {
    others = { incidentId: null, list: [] };
    return;
  }
  if (othersLoading) {
    othersAgain = true;
    return;
  }
  othersLoading = get(`/api/incidents/${id}`)
    .then((d) => {
      const list = (d.assignments || []).filter(
        (a) => a.unit_id !== me.id && ["dispatched", "en_route", "on_scene"].includes(a.status),
      );
      others = { incidentId: id, list };
      scheduleRender();
    })
    .catch(() => {}) // offline: the list waits for the next change
    .finally(() => {
      othersLoading = null;
      if (othersAgain) {
        othersAgain = false;
        othersSoon();
      }
    });
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

const ENDED = new Set(["cleared", "cancelled"]);

/** Apply one of this unit's events (own unit, current job) to the view's state. */
function apply(ev) {
  const d = ev.data || {};
  if (ev.unit_id === unitId) applyEmergencyEvent(ev);
  if (!me) return;
  if (loading) loadAgain = true; // the read in flight may predate this event
  if (ev.unit_id === me.id) {
    if (ev.type === "unit.assigned") {
      me.status = d.unit_status || "dispatched";
      load().catch(showError);
    } else if (ev.type === "unit.acknowledged") {
      if (me.job && me.job.assignment_id === d.assignment_id) me.job.acknowledged_at = d.acknowledged_at;
    } else if (ev.type === "unit.status") {
      if (d.to) me.status = d.to;
      if (me.job && d.assignment_id === me.job.assignment_id && d.assignment_status) {
        if (ENDED.has(d.assignment_status)) me.job = null;
        else me.job.assignment_status = d.assignment_status;
      } else if (!me.job && d.assignment_id && d.assignment_status && !ENDED.has(d.assignment_status)) {
        load().catch(showError); // a job this view has not seen yet
      }
    } else if (d.to && ev.type.startsWith("unit.")) {
      me.status = d.to;
    }
  }
  const inc = me.job && me.job.incident;
  if (inc && ev.incident_id === inc.id) {
    if (ev.type === "incident.graded") {
      inc.grade = d.to;
      if (d.target_at) inc.target_at = d.target_at;
    } else if (ev.type === "incident.status" || ev.type === "incident.returned_to_queue") {
      inc.status = d.to;
    } else if (ev.type === "incident.closed" || ev.type === "incident.merged") {
      inc.status = "closed";
    } else if (ev.type === "incident.reopened") {
      inc.status = d.status || inc.status;
    } else if (ev.type === "incident.markers") {
      load().catch(showError); // new warnings (a linked call): read the job's full set
    } else if ((ev.type === "unit.assigned" || ev.type === "unit.status") && ev.unit_id !== me.id) {
      othersSoon();
    }
    for (const k of ["address_line", "ward", "area", "lat", "lng", "location_label"]) {
      if (d[k] !== undefined) inc[k] = d[k];
    }
  }
  saveSnapshot();
  scheduleRender();
}

function applyEmergencyEvent(ev) {
  const d = ev.data || {};
  if (ev.type === "emergency.raised") {
    setEmergency({
      ...(emergency || {}),
      state: "open",
      emergency_id: d.emergency_id,
      incident_id: ev.incident_id,
      ref: d.ref,
      pressed_at: d.pressed_at,
      position_age_s: d.position_age_s,
      // The event names the units; the press's own answer (if it came) has their ids too.
      assigned:
        emergency && Array.isArray(emergency.assigned) && emergency.assigned.length
          ? emergency.assigned
          : (d.assigned || []).map((c) => ({ callsign: c })),
    });
  } else if (ev.type === "emergency.cancelled") {
    if (emergency && emergency.state === "open") setEmergency(null);
  } else if (ev.type === "alarm.cleared" && d.kind === "officer_emergency" && emergency) {
    setEmergency({ ...emergency, acknowledged_by: d.acknowledged_by || "control" });
  }
}

// ---- the view -----------------------------------------------------------------------
const LABELS = {
  en_route: "En route",
  on_scene: "On scene",
  available: "Available",
  unavailable: "Unavailable",
};

/** The unit as the officer left it: the snapshot with the queued presses applied. */
function view() {
  if (!me) return null;
  const v = { ...me, job: me.job ? { ...me.job } : null };
  for (const it of outbox.items()) {
    if (it.kind === "ack" && v.job && it.body.assignment_id === v.job.assignment_id) {
      v.job.acknowledged_at = v.job.acknowledged_at || it.pressed_at;
    }
    if (it.kind !== "status") continue;
    const st = it.body.status;
    v.status = st;
    if (v.job && it.body.incident_id === v.job.incident.id) {
      if (st === "en_route" || st === "on_scene") v.job.assignment_status = st;
      else v.job = null; // "Clear" (or unavailable) leaves the job
    }
  }
  return v;
}

/** The job waiting for the officer's acknowledgement, if any. */
function alertJob(v) {
  const j = v && v.job;
  if (!j || j.assignment_status !== "dispatched" || j.acknowledged_at) return null;
  return acked.has(j.assignment_id) ? null : j;
}

function buttonsFor(unit) {
  if (unit.job) {
    // "Clear" leaves the job: the unit becomes available again.
    const st = unit.status;
    const list = [];
    if (st === "dispatched") list.push(["en_route", "En route"], ["on_scene", "On scene"]);
    if (st === "en_route") list.push(["on_scene", "On scene"]);
    list.push(["available", "Clear"]);
    return list;
  }
  if (unit.status === "available") return [["unavailable", "Unavailable"]];
  return [["available", "Available"], ...(unit.status === "off_duty" ? [["unavailable", "Unavailable"]] : [])];
}

function typeName(i) {
  return i.type_name || typeNames[i.type_code] || i.type_code;
}

function addressLine(i) {
  const coords = i.lat != null && i.lng != null ? `${i.lat.toFixed(5)}, ${i.lng.toFixed(5)}` : "";
  return i.address_line || i.address || coords;
}

function whereHtml(i) {
  const line = addressLine(i);
  const areas = [i.ward && `Ward: ${i.ward}`, i.area && `Borough: ${i.area}`].filter(Boolean);
  // What the caller said, when it differs from what it resolved to.
  const said =
    i.address && i.address !== i.location_label && !line.startsWith(i.address) ? i.address : "";
  return `
    <div class="where" id="job-where">${esc(line)}</div>
    ${areas.length ? `<div class="areas" id="job-areas">${esc(areas.join(" · "))}</div>` : ""}
    ${said ? `<div class="hint">Caller said: “${esc(said)}”</div>` : ""}`;
}

function navLink(i) {
  if (i.lat == null || i.lng == null) return "";
  const dest = `${Number(i.lat).toFixed(6)},${Number(i.lng).toFixed(6)}`;
  const href = `https://www.google.com/maps/dir/?api=1&destination=${encodeURIComponent(dest)}`;
  return `<a id="job-nav" class="nav-btn" href="${esc(href)}" target="_blank" rel="noopener">Navigate ↗</a>`;
}

function othersHtml(job) {
  if (others.incidentId !== job.incident.id) return "";
  const list = others.list;
  return `<div class="others" id="job-units"><h3>Other units</h3>${
    list.length
      ? `<ul>${list
          .map(
            (a) =>
              `<li data-callsign="${esc(a.callsign)}" data-status="${esc(a.status)}"><strong>${esc(
                a.callsign,
              )}</strong> ${statusChip(a.status)}</li>`,
          )
          .join("")}</ul>`
      : `<div class="hint">No other unit sent.</div>`
  }</div>`;
}

function render() {
  renderEmergency();
  renderOutbox();
  const v = view();
  if (!v) {
    renderAlert(null);
    return;
  }
  $("#callsign").textContent = v.callsign;
  $("#my-status").innerHTML = statusChip(v.status);
  document.title = `${v.callsign} · ${LABELS[v.status] || v.status}`;
  const job = v.job;
  if (job) {
    const i = job.incident;
    // Warning markers first: what the officer must know before arriving.
    $("#job").innerHTML = `
      ${markerBanner(job.markers, { id: "job-markers", title: "Warning" })}
      <h2>Current job</h2>
      <div class="ref" id="job-ref">${gradeBadge(i.grade)} ${esc(i.ref)}</div>
      <div class="type">${esc(typeName(i))}</div>
      ${whereHtml(i)}
      ${job.history_line ? `<div class="history-line" id="job-history">${esc(job.history_line)}</div>` : ""}
      <div class="desc">${esc(i.description || "")}</div>
      <div class="hint">Assignment: ${esc(String(job.assignment_status).replace("_", " "))}${
        i.status === "closed" ? " · incident closed" : ""
      }</div>
      ${othersHtml(job)}
      ${navLink(i)}`;
  } else {
    $("#job").innerHTML = `<div class="empty" id="no-job">No current job.</div>`;
  }
  $("#remark-form").hidden = !job;
  const alerting = alertJob(v);
  // While the alert covers the screen its own buttons are the only ones.
  $("#buttons").innerHTML = alerting
    ? ""
    : buttonsFor(v)
        .map(([st, label]) => `<button type="button" class="${st}" data-status="${st}">${esc(label)}</button>`)
        .join("");
  renderAlert(alerting);
}

// ---- the new-job alert --------------------------------------------------------------
let ringing = null; // {assignmentId, stop}
let alertHtml = "";
function renderAlert(job) {
  const el = $("#job-alert");
  if (!job) {
    if (ringing) ringing.stop();
    ringing = null;
    el.hidden = true;
    el.innerHTML = alertHtml = "";
    document.body.classList.remove("alerting");
    return;
  }
  const i = job.incident;
  const markers = job.markers || [];
  const assist = i.type_code === ASSIST_TYPE;
  const html = `
    <div class="ja-box">
      <div class="ja-title" id="ja-title">${assist ? "OFFICER NEEDS HELP" : "NEW JOB"}</div>
      <div class="ja-ref" id="ja-ref">${gradeBadge(i.grade)} ${esc(i.ref)}</div>
      <div class="ja-type" id="ja-type">${esc(typeName(i))}</div>
      <div class="ja-where" id="ja-where">${esc(addressLine(i))}</div>
      ${
        markers.length
          ? `<div class="ja-markers" id="ja-markers">⚠ ${markers.length} warning marker${
              markers.length === 1 ? "" : "s"
            }: ${esc(markers.map((m) => m.category_name || m.category).join(", "))}</div>`
          : ""
      }
      <button type="button" id="ack-job" class="ack-btn">Acknowledge</button>
      <button type="button" class="en_route ja-go" data-status="en_route">Acknowledge · En route</button>
      ${audioReady() ? "" : `<div class="hint ja-sound">Tap anywhere to turn the alert sound on.</div>`}
    </div>`;
  // Redrawn only when it changes: a button replaced under a finger loses its click.
  if (html !== alertHtml) {
    alertHtml = html;
    el.innerHTML = html;
  }
  el.hidden = false;
  document.body.classList.add("alerting");
  if (!ringing || ringing.assignmentId !== job.assignment_id) {
    if (ringing) ringing.stop();
    const stopTone = ring(assist ? "emergency" : "job", RING_EVERY_MS);
    const buzz = () => navigator.vibrate && navigator.vibrate(VIBRATE);
    buzz();
    const t = setInterval(buzz, RING_EVERY_MS);
    ringing = {
      assignmentId: job.assignment_id,
      stop: () => {
        stopTone();
        clearInterval(t);
        if (navigator.vibrate) navigator.vibrate(0);
      },
    };
    $("#ack-job").focus();
  }
}

$("#job-alert").addEventListener("click", (e) => {
  if (e.target.closest("#ack-job")) acknowledge();
  else if (!e.target.closest("button")) scheduleRender(); // a tap unlocked the sound: drop the hint
});

async function acknowledge() {
  const v = view();
  const job = alertJob(v);
  if (!job) return;
  markAcked(job.assignment_id);
  render();
  await outbox.add({
    kind: "ack",
    path: `/api/units/${unitId}/acknowledge`,
    body: { assignment_id: job.assignment_id, pressed_at: new Date().toISOString() },
    label: `Acknowledge ${job.incident.ref}`,
  });
}

// ---- status presses -----------------------------------------------------------------
let pressing = false; // one press at a time: a double tap must not queue the move twice
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-status]");
  if (!b || !me || pressing) return;
  pressing = true;
  try {
    const v = view();
    const status = b.dataset.status;
    const body = { status, pressed_at: new Date().toISOString() };
    if (v.job) body.incident_id = v.job.incident.id;
    // Setting off or arriving acknowledges the job (the server records it the same way).
    if (v.job && (status === "en_route" || status === "on_scene")) markAcked(v.job.assignment_id);
    const label = status === "available" && v.job ? "Clear" : LABELS[status] || status;
    await outbox.add({ kind: "status", path: `/api/units/${unitId}/status`, body, label });
    render();
  } finally {
    pressing = false;
  }
});

$("#remark-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const v = view();
  const text = $("#remark-text").value.trim();
  if (!text || !v || !v.job) return;
  $("#remark-text").value = "";
  await outbox.add({
    kind: "remark",
    path: `/api/incidents/${v.job.incident.id}/remarks`,
    body: { text, pressed_at: new Date().toISOString() },
    label: `Remark: ${text.length > 40 ? text.slice(0, 40) + "…" : text}`,
  });
});

// ---- waiting to send ----------------------------------------------------------------
// With signal a press is gone in a moment: the list shows only what is kept waiting (no
// signal, a failure, or slow), so the job card does not jump at every press.
const SHOW_AFTER_MS = 1500;
let showTimer = null;
function renderOutbox() {
  const items = outbox.items();
  const box = $("#outbox");
  const oldest = Math.min(...items.map((i) => Date.parse(i.queued_at)));
  const kept =
    items.length &&
    (navigator.onLine === false || outbox.lastError || Date.now() - oldest >= SHOW_AFTER_MS);
  if (items.length && !kept && showTimer === null) {
    showTimer = setTimeout(() => {
      showTimer = null;
      scheduleRender();
    }, SHOW_AFTER_MS);
  }
  box.hidden = !kept && !refused.length;
  if (box.hidden) return;
  $("#outbox-count").textContent = String(items.length);
  const sendingNow = items.some((i) => outbox.isSending(i));
  $("#outbox-state").textContent = !items.length
    ? ""
    : sendingNow
      ? "Sending…"
      : outbox.lastError === "no signal" || navigator.onLine === false
        ? "No signal: kept on this device, sent in order when the signal returns."
        : outbox.lastError
          ? `Not sent yet (${outbox.lastError}): trying again.`
          : "Sending…";
  $("#outbox-list").innerHTML = items
    .map(
      (i) =>
        `<li data-kind="${esc(i.kind)}" data-pressed-at="${esc(i.pressed_at)}"${i.urgent ? ' class="urgent"' : ""}>
          <span class="ob-label">${esc(i.label)}</span>
          <time datetime="${esc(i.pressed_at)}">${fmtTime(i.pressed_at)}</time>
          <span class="ob-state">${outbox.isSending(i) ? "sending" : "waiting"}</span></li>`,
    )
    .join("");
  $("#refused-list").innerHTML = refused
    .map(
      (r, n) =>
        `<li class="refused" data-kind="${esc(r.kind)}">
          <div><strong>${esc(r.label)}</strong> (${fmtTime(r.pressed_at)}) was not accepted:</div>
          <div class="reason">${esc(r.detail)}</div>
          <button type="button" data-dismiss="${n}">OK</button></li>`,
    )
    .join("");
}

$("#refused-list").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-dismiss]");
  if (!b) return;
  refused.splice(Number(b.dataset.dismiss), 1);
  render();
});

// ---- the emergency button -----------------------------------------------------------
const emButton = $("#emergency-btn");
let holdTimer = null;
let heldFired = false;
let lastTap = 0;
let armTimer = null;

function endHold() {
  if (holdTimer !== null) clearTimeout(holdTimer);
  holdTimer = null;
  emButton.classList.remove("holding");
}

emButton.addEventListener("pointerdown", (e) => {
  if (e.pointerType === "mouse" && e.button !== 0) return;
  heldFired = false;
  endHold();
  emButton.classList.add("holding"); // the fill runs for HOLD_MS (unit.css)
  holdTimer = setTimeout(() => {
    holdTimer = null;
    heldFired = true;
    emButton.classList.remove("holding");
    raiseEmergency();
  }, HOLD_MS);
});
for (const type of ["pointerup", "pointerleave", "pointercancel"]) emButton.addEventListener(type, endHold);
emButton.addEventListener("contextmenu", (e) => e.preventDefault()); // a long press is ours
emButton.addEventListener("click", () => {
  if (heldFired) {
    heldFired = false; // the click that ends a completed hold
    return;
  }
  const now = Date.now();
  if (now - lastTap <= DOUBLE_MS) {
    lastTap = 0;
    disarm();
    raiseEmergency();
    return;
  }
  // One tap does nothing but say how.
  lastTap = now;
  emButton.classList.add("armed");
  $("#emergency-hint").textContent = "press again to send";
  clearTimeout(armTimer);
  armTimer = setTimeout(disarm, DOUBLE_MS);
});

function disarm() {
  clearTimeout(armTimer);
  emButton.classList.remove("armed");
  $("#emergency-hint").textContent = "hold 2 s or press twice";
}

function freshFix() {
  return lastFix && Date.now() - Date.parse(lastFix.at) < 10 * 60 * 1000 ? lastFix : null;
}

async function raiseEmergency() {
  if (emergency) return;
  const body = { pressed_at: new Date().toISOString() };
  const fix = freshFix();
  if (fix) Object.assign(body, { lat: fix.lat, lng: fix.lng, position_at: fix.at });
  setEmergency({ state: "queued", pressed_at: body.pressed_at });
  if (navigator.vibrate) navigator.vibrate([100, 60, 100]);
  render();
  const item = await outbox.add({
    kind: "emergency",
    path: `/api/units/${unitId}/emergency`,
    body,
    label: "EMERGENCY",
    urgent: true,
  });
  if (!fix) askForFix(item);
}

/** No recent fix at the press: ask the device for one, for the press if it has not left
 * yet, else as a position report right behind it. */
function askForFix(item) {
  if (!("geolocation" in navigator)) return;
  navigator.geolocation.getCurrentPosition(
    async (p) => {
      noteFix(p);
      const f = lastFix;
      const amended = await outbox.amend(item, { ...item.body, lat: f.lat, lng: f.lng, position_at: f.at });
      if (!amended) await outbox.addPositions(unitId, [{ unit_id: unitId, lat: f.lat, lng: f.lng, at: f.at }]);
    },
    () => {},
    { enableHighAccuracy: true, maximumAge: 30000, timeout: 15000 },
  );
}

function renderEmergency() {
  const el = $("#emergency");
  const on = Boolean(emergency);
  el.hidden = !on;
  $("#emergency-bar").hidden = on;
  document.body.classList.toggle("in-emergency", on);
  if (!on) {
    $("#em-body").innerHTML = "";
    $("#em-cancel-form").hidden = true;
    $("#em-cancel").hidden = false;
    return;
  }
  const e = emergency;
  const sent = e.state === "open";
  const assigned = Array.isArray(e.assigned) ? e.assigned : [];
  const age =
    e.position_age_s == null
      ? sent
        ? "No position was known at the press: tell control where you are."
        : ""
      : `Position sent was ${Math.round(e.position_age_s)} s old at the press.`;
  $("#em-body").innerHTML = sent
    ? `<div class="em-title" id="em-title">EMERGENCY SENT — help is coming</div>
       <div class="em-ref">${esc(e.ref || "")} · pressed ${fmtTime(e.pressed_at)}</div>
       <div class="em-units" id="em-units">${
         assigned.length
           ? `Units sent: ${assigned.map((a) => `<strong data-callsign="${esc(a.callsign)}">${esc(a.callsign)}</strong>`).join(", ")}`
           : "Control is finding units for you."
       }${e.shortfall ? ` <span class="em-short">(${Number(e.shortfall)} more being found)</span>` : ""}</div>
       <div class="em-pos" id="em-pos">${esc(age)}</div>
       ${e.acknowledged_by ? `<div class="em-ack" id="em-ack">Control has it (acknowledged by ${esc(e.acknowledged_by)}).</div>` : ""}`
    : `<div class="em-title" id="em-title">EMERGENCY — NOT SENT YET</div>
       <div class="em-ref">Pressed ${fmtTime(e.pressed_at)}. No signal: it goes first, the moment the signal returns.</div>
       <div class="em-pos">Keep the app open. Use your radio if you can.</div>`;
}

$("#em-cancel").addEventListener("click", () => {
  $("#em-cancel").hidden = true;
  $("#em-cancel-form").hidden = false;
  $("#em-reason").focus();
});
$("#em-keep").addEventListener("click", () => {
  $("#em-cancel-form").hidden = true;
  $("#em-cancel").hidden = false;
});
$("#em-cancel-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const reason = $("#em-reason").value.trim();
  if (!reason) return;
  $("#em-reason").value = "";
  $("#em-cancel-form").hidden = true;
  $("#em-cancel").hidden = false;
  // Not sent yet: it never leaves the device.
  const unsent = await outbox.drop((i) => i.kind === "emergency");
  if (unsent.length) {
    setEmergency(null);
    toast("Emergency cancelled before it was sent", "ok");
    return;
  }
  await outbox.add({
    kind: "emergency_cancel",
    path: `/api/units/${unitId}/emergency/cancel`,
    body: { reason },
    label: "Cancel emergency",
  });
});

// ---- position sharing -----------------------------------------------------------------
let watchId = null;
let lastSent = 0;
$("#share").addEventListener("change", (e) => {
  if (e.target.checked) startSharing();
  else stopSharing();
});

function noteFix(p) {
  lastFix = {
    lat: p.coords.latitude,
    lng: p.coords.longitude,
    accuracy: p.coords.accuracy,
    at: new Date(p.timestamp).toISOString(),
  };
}

function startSharing() {
  if (!("geolocation" in navigator)) {
    $("#pos-state").textContent = "This device cannot share its position.";
    $("#share").checked = false;
    return;
  }
  $("#pos-state").textContent = "Waiting for a position fix…";
  watchId = navigator.geolocation.watchPosition(
    (p) => {
      noteFix(p);
      // At most one report every 10 s: enough for ETAs, kind to the battery.
      if (Date.now() - lastSent < 10000) return;
      lastSent = Date.now();
      outbox.addPositions(unitId, [{ unit_id: unitId, lat: lastFix.lat, lng: lastFix.lng, at: lastFix.at }]);
    },
    (err) => {
      $("#pos-state").textContent = `No position: ${err.message}`;
      if (err.code === err.PERMISSION_DENIED) {
        $("#share").checked = false;
        stopSharing();
      }
    },
    { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 },
  );
  localStorage.setItem("cad.sharePosition", "1");
}

function stopSharing() {
  if (watchId !== null) navigator.geolocation.clearWatch(watchId);
  watchId = null;
  localStorage.removeItem("cad.sharePosition");
  $("#pos-state").textContent = "Position sharing is off.";
}

// ---- start ----------------------------------------------------------------------------
window.__cadUnit = { outbox, view, me: () => me, emergency: () => emergency };
if (me) render(); // the last snapshot at once: the officer sees the job with no signal
await outbox.open();
outbox.flush();
render();

const stream = new EventStream({
  // The server sends a unit only its own unit's and job's events.
  onEvent: apply,
  onState: (state) => {
    showConnState(state);
    if (state === "live" || state === "polling") outbox.flush();
    scheduleRender();
  },
  onResync: () => load().catch(showError),
  pollEvents: false,
});
stream.start().then(async () => {
  await load().catch((err) => {
    if (!(err instanceof ApiError && err.status === 0)) showError(err);
  });
  if (localStorage.getItem("cad.sharePosition") && navigator.permissions) {
    const perm = await navigator.permissions.query({ name: "geolocation" }).catch(() => null);
    if (perm && perm.state === "granted") {
      $("#share").checked = true;
      startSharing();
    }
  }
});
