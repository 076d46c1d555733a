// Unit terminal (phone-sized): own status, current job, big status buttons, position.
import { ApiError, get, post, requireSession } from "./api.js";
import { $, esc, gradeBadge, showConnState, showError, statusChip, toast, topbar } from "./common.js";
import { markerBanner } from "./retrieval.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["unit"]);
topbar("Unit", s);

let me = null;
let sending = false;
let typeNames = {};
get("/api/incident-types")
  .then((list) => {
    typeNames = Object.fromEntries(list.map((t) => [t.code, t.name]));
    if (me) scheduleRender();
  })
  .catch(() => {});

// The snapshot (/api/units/me) is read at start, on resync and when a new job arrives (its
// details are not in the event); everything else is applied from the events themselves.
// One read at a time: events during a read ask for exactly one more read after it.
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
    scheduleRender();
  })();
  return loading;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (me) render();
  });
}

const ENDED = new Set(["cleared", "cancelled"]);

/** Apply one of this unit's events (own unit, current job) to the view's state. */
function apply(ev) {
  if (!me) return;
  if (loading) loadAgain = true; // the read in flight may predate this event
  const d = ev.data || {};
  if (ev.unit_id === me.id) {
    if (ev.type === "unit.assigned") {
      me.status = d.unit_status || "dispatched";
      load().catch(showError);
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
    }
    for (const k of ["address_line", "ward", "area", "lat", "lng", "location_label"]) {
      if (d[k] !== undefined) inc[k] = d[k];
    }
  }
  scheduleRender();
}

const LABELS = {
  en_route: "En route",
  on_scene: "On scene",
  available: "Available",
  unavailable: "Unavailable",
};

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

function whereHtml(i) {
  const coords = i.lat != null && i.lng != null ? `${i.lat.toFixed(5)}, ${i.lng.toFixed(5)}` : "";
  const line = i.address_line || i.address || coords;
  const areas = [i.ward && `Ward: ${i.ward}`, i.area && `Borough: ${i.area}`].filter(Boolean);
  // What the caller said, when it differs from what it resolved to.
  const said =
    i.address && i.address !== i.location_label && !line.startsWith(i.address) ? i.address : "";
  return `
    <div class="where" id="job-where">${esc(line)}</div>
    ${areas.length ? `<div class="areas" id="job-areas">${esc(areas.join(" · "))}</div>` : ""}
    ${said ? `<div class="hint">Caller said: “${esc(said)}”</div>` : ""}`;
}

function render() {
  $("#callsign").textContent = me.callsign;
  $("#my-status").innerHTML = statusChip(me.status);
  document.title = `${me.callsign} · ${LABELS[me.status] || me.status}`;
  const job = me.job;
  if (job) {
    const i = job.incident;
    // Warning markers first: what the officer must know before arriving.
    $("#job").innerHTML = `
      ${markerBanner(job.markers, { id: "job-markers", title: "Warning" })}
      <h2>Current job</h2>
      <div class="ref" id="job-ref">${gradeBadge(i.grade)} ${esc(i.ref)}</div>
      <div class="type">${esc(i.type_name || typeNames[i.type_code] || i.type_code)}</div>
      ${whereHtml(i)}
      ${job.history_line ? `<div class="history-line" id="job-history">${esc(job.history_line)}</div>` : ""}
      <div class="desc">${esc(i.description || "")}</div>
      <div class="hint">Assignment: ${esc(String(job.assignment_status).replace("_", " "))}${
        i.status === "closed" ? " · incident closed" : ""
      }</div>
      ${
        i.lat != null && i.lng != null
          ? `<a href="geo:${Number(i.lat)},${Number(i.lng)}">Open in navigation</a>`
          : ""
      }`;
  } else {
    $("#job").innerHTML = `<div class="empty" id="no-job">No current job.</div>`;
  }
  $("#buttons").innerHTML = buttonsFor(me)
    .map(([st, label]) => `<button type="button" class="${st}" data-status="${st}">${esc(label)}</button>`)
    .join("");
}

$("#buttons").addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-status]");
  if (!b || sending || !me) return;
  sending = true;
  for (const x of document.querySelectorAll("#buttons button")) x.disabled = true;
  const body = { status: b.dataset.status };
  if (me.job) body.incident_id = me.job.incident.id;
  try {
    const res = await post(`/api/units/${me.id}/status`, body);
    // The answer says what changed; its event may arrive before or after, to the same effect.
    apply({ type: "unit.status", unit_id: me.id, data: { to: res.status, ...res } });
    toast(`${me.callsign}: ${b.textContent}`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) toast(err.message, "error");
    else showError(err);
    await load().catch(showError); // refused: read what is true now
  } finally {
    sending = false;
    scheduleRender();
  }
});

// ---- position sharing -----------------------------------------------------------------
let watchId = null;
let lastSent = 0;
$("#share").addEventListener("change", (e) => {
  if (e.target.checked) startSharing();
  else stopSharing();
});

function startSharing() {
  if (!("geolocation" in navigator)) {
    $("#pos-state").textContent = "This device cannot share its position.";
    $("#share").checked = false;
    return;
  }
  $("#pos-state").textContent = "Waiting for a position fix…";
  watchId = navigator.geolocation.watchPosition(
    async (p) => {
      // At most one report every 10 s: enough for ETAs, kind to the battery.
      if (Date.now() - lastSent < 10000 || !me) return;
      lastSent = Date.now();
      try {
        await post("/api/units/positions", [
          { unit_id: me.id, lat: p.coords.latitude, lng: p.coords.longitude, at: new Date(p.timestamp).toISOString() },
        ]);
        $("#pos-state").textContent = `Position sent ${new Date().toLocaleTimeString("en-GB")} (±${Math.round(p.coords.accuracy)} m)`;
      } catch (err) {
        $("#pos-state").textContent = `Position not sent: ${err.message}`;
      }
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

// ---- live -----------------------------------------------------------------------------
const stream = new EventStream({
  // The server sends a unit only its own unit's and job's events.
  onEvent: apply,
  onState: showConnState,
  onResync: () => load().catch(showError),
  pollEvents: false,
});
stream.start().then(async () => {
  await load().catch(showError);
  if (localStorage.getItem("cad.sharePosition") && navigator.permissions) {
    const perm = await navigator.permissions.query({ name: "geolocation" }).catch(() => null);
    if (perm && perm.state === "granted") {
      $("#share").checked = true;
      startSharing();
    }
  }
});
