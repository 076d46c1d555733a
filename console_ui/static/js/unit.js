// Unit terminal (phone-sized): own status, current job, big status buttons, position.
import { ApiError, get, post, requireSession } from "./api.js";
import { $, debounce, esc, gradeBadge, showConnState, showError, statusChip, toast, topbar } from "./common.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["unit"]);
topbar("Unit", s);

let me = null;
let sending = false;
let typeNames = {};
get("/api/incident-types")
  .then((list) => {
    typeNames = Object.fromEntries(list.map((t) => [t.code, t.name]));
    if (me) render();
  })
  .catch(() => {});

async function load() {
  me = await get("/api/units/me");
  render();
}
const reload = debounce(() => load().catch(showError), 150);

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

function render() {
  $("#callsign").textContent = me.callsign;
  $("#my-status").innerHTML = statusChip(me.status);
  document.title = `${me.callsign} · ${LABELS[me.status] || me.status}`;
  const job = me.job;
  if (job) {
    const i = job.incident;
    const where = i.address || `${i.lat.toFixed(5)}, ${i.lng.toFixed(5)}`;
    $("#job").innerHTML = `
      <h2>Current job</h2>
      <div class="ref" id="job-ref">${gradeBadge(i.grade)} ${esc(i.ref)}</div>
      <div class="type">${esc(typeNames[i.type_code] || i.type_code)}</div>
      <div class="where">${esc(where)}${i.area ? " · " + esc(i.area) : ""}</div>
      <div class="desc">${esc(i.description || "")}</div>
      <div class="hint">Assignment: ${esc(job.assignment_status.replace("_", " "))}</div>
      <a href="geo:${i.lat},${i.lng}">Open in navigation</a>`;
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
    await post(`/api/units/${me.id}/status`, body);
    toast(`${me.callsign}: ${b.textContent}`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) toast(err.message, "error");
    else showError(err);
  } finally {
    sending = false;
    await load().catch(showError);
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
  // The server sends a unit only its own unit's and job's events; any of them may change
  // what this screen shows, so reload the (small) view.
  onEvent: () => reload(),
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
