// Dispatcher console: the open-incident queue, unit board, map, alarms, and the selected
// incident's detail and recommendations.
//
// The board holds every open incident, every unit and every open alarm of its desk (the
// boroughs this dispatcher works, or All London); it loads them once
// (and again only after a gap the stream cannot fill), then keeps them by applying events:
// no list is refetched because something happened. Drawing is batched to one pass per
// animation frame; nothing waits for the stream to go quiet, so a steady stream of calls
// cannot hold a change back.
import { ApiError, get as apiGet, post as apiPost, requireSession } from "./api.js";
import {
  $,
  ageText,
  countdownHtml,
  esc,
  fmtTime,
  gradeBadge,
  loadGrades,
  perFrame,
  refreshCountdowns,
  showConnState,
  showError,
  statusChip,
  throttle,
  toast,
  topbar,
} from "./common.js";
import { EMERGENCY_KIND, EmergencyAlarms } from "./emergency-alarm.js";
import { DeskPicker } from "./desk.js";
import { CadMap } from "./map.js";
import { markerBanner } from "./retrieval.js";
import { Mute, unlockAudioOnFirstGesture } from "./sound.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["dispatcher", "supervisor", "admin"]);
const grades = await loadGrades(apiGet);
topbar("Dispatch", s, { searchBox: true });
unlockAudioOnFirstGesture();
// Sound for a new I-grade incident and for alarms; muted per user on this device.
const mute = new Mute(s.username);
$(".topbar").insertBefore(mute.button(), $("#conn"));
// The desk: which boroughs this board shows and the stream carries (per user, this device).
const desk = new DeskPicker(s.username, { onChange: (codes) => deskChanged(codes) });
$(".topbar h1").after(desk.button);

const PAGE = 2000; // open incidents per snapshot page
const OVERSCAN = 8; // rows drawn above and below the visible window
const MARKERS_PER_FRAME = 500; // map markers added or restyled per frame (no long tasks)
// A few changed markers redraw most of the map's canvas (they are spread over London), so
// they are applied at most once a second; the queue and the unit board are the live view.
const MAP_GAP_MS = 1000;
const BULK = 100; // a snapshot's worth of markers goes in at once, a frame at a time
const DRAW_GAP_MS = 250; // the board draws at most 4 times a second under a stream
const DETAIL_EVERY_MS = 750; // the selected incident's refetch: leading + one trailing
const FRESH_MS = 3000; // how long a new incident's row stays highlighted
const ALARMS_SHOWN = 200;
const OPEN = new Set(["pending", "dispatched", "on_scene"]);
const LEFT_JOB = new Set(["cleared", "cancelled"]);
const STATUS_ORDER = ["dispatched", "en_route", "on_scene", "unavailable", "available", "off_duty"];

// Counters a test or a person can read: how hard the board works and how often it asks.
const stats = {
  renders: 0,
  renderMsLast: 0, // a whole draw; also queue*, units*, map* for its parts
  renderMsMax: 0,
  queueMsLast: 0,
  queueMsMax: 0,
  firstQueueMs: null, // the first full queue render after a snapshot
  eventsApplied: 0,
  positionsApplied: 0,
  httpRequests: 0,
  snapshots: 0,
  snapshotMs: 0,
  fetchedOne: 0,
  counts: null, // {state, server}: the snapshot's own counts against the server's
  shown: 0,
};
const get = (path) => {
  stats.httpRequests += 1;
  return apiGet(path);
};
const post = (path, body) => {
  stats.httpRequests += 1;
  return apiPost(path, body);
};
// A cue is for what happens now, not for events replayed after a gap in the stream.
const CUE_WITHIN_MS = 120000;
const recent = (ev) => Date.now() - Date.parse(ev.at) < CUE_WITHIN_MS;

const incidents = new Map(); // id -> incident: every open incident of the desk
const units = new Map(); // id -> unit: every unit based in the desk's boroughs
// What is known to lie outside the desk (so an event about it fetches nothing): the ids
// of incidents and units seen outside it since the last snapshot.
const outsideIncidents = new Set();
const outsideUnits = new Set();
/** In the desk: All London, one of its boroughs, or no borough at all (as the server). */
const inDesk = (areaCode) => areaCode == null || desk.has(areaCode);
const alarms = new Map(); // alarm id -> alarm
const emergencies = new EmergencyAlarms({
  post,
  describe: (a) => ({
    callsign: units.get(a.unit_id)?.callsign,
    ref: incidents.get(a.incident_id)?.ref,
  }),
});
const typeNames = new Map(); // type code -> name
const areaNames = new Map(); // area code -> borough name, from the incidents seen
const fresh = new Map(); // incident id -> highlighted until (ms)
let selectedId = null;
let detail = null;
let recs = null;
let conflict = null; // {detail, next} after a 409

const FILTER_KEY = `cad.dispatcher.filters.${s.username}`;
const filters = loadFilters();

const map = new CadMap($("#map"), { zoom: 10 });
map.onIncidentClick = (id) => select(id);
map.showDesk(desk.areas);
map
  .loadAreas()
  .then((list) => desk.setBoroughs(list))
  .catch(showError);
if (map.addGoToBox) map.addGoToBox();

// ---- state ---------------------------------------------------------------------------
function loadFilters() {
  const f = { grades: new Set(grades.codes), area: "", status: "", showLater: true };
  try {
    const saved = JSON.parse(localStorage.getItem(FILTER_KEY) || "null");
    if (saved) {
      f.grades = new Set(saved.grades || f.grades);
      f.area = saved.area || "";
      f.status = saved.status || "";
      f.showLater = saved.showLater !== false;
    }
  } catch {
    /* a broken saved filter is no filter */
  }
  return f;
}

function saveFilters() {
  localStorage.setItem(
    FILTER_KEY,
    JSON.stringify({ ...filters, grades: [...filters.grades] }),
  );
}

/** Sort keys, kept on the incident so a sort of thousands compares numbers only. */
function keyed(inc) {
  inc._t = inc.target_at ? Date.parse(inc.target_at) : Infinity;
  inc._c = inc.created_at ? Date.parse(inc.created_at) : 0;
  inc._g = grades.rank[inc.grade] ?? 99;
  if (inc.area_code && !areaNames.has(inc.area_code)) {
    areaNames.set(inc.area_code, inc.area || inc.area_code);
    dirty.areas = true;
  }
  return inc;
}

function putIncident(inc) {
  if (!inDesk(inc.area_code)) {
    outsideIncidents.add(inc.id);
    dropIncident(inc.id);
    return;
  }
  if (incidents.has(inc.id)) dropped = true; // the old object leaves `ordered`
  incidents.set(inc.id, keyed(inc));
  added.push(inc);
  changedIncident(inc.id);
}

// What the map shows of an incident: a change elsewhere (status, units) leaves its marker.
const MARKER_KEYS = ["grade", "lat", "lng"];

function patchIncident(id, patch) {
  const inc = incidents.get(id);
  if (!inc) {
    if (fetching.has(id)) fetching.set(id, true); // on its way: fetch it again after
    return false;
  }
  const moved = MARKER_KEYS.some((k) => k in patch && patch[k] !== inc[k]);
  Object.assign(inc, patch);
  keyed(inc);
  changedIncident(id, moved);
  return true;
}

function dropIncident(id) {
  if (incidents.delete(id)) {
    dropped = true;
    changedIncident(id);
  }
}

function changedIncident(id, marker = true) {
  dirty.queue = true;
  if (marker) dirty.markers.add(id);
  schedule();
}

function changedUnit(id) {
  dirty.units = true;
  dirty.unitMarkers.add(id);
  schedule();
}

function addCallsign(inc, callsign) {
  const list = (inc.units || []).filter((c) => c !== callsign);
  list.push(callsign);
  inc.units = list;
}

function removeCallsign(inc, callsign) {
  inc.units = (inc.units || []).filter((c) => c !== callsign);
}

/** From GET /api/incidents/{id} (the detail) to a queue row. */
function rowFromDetail(d) {
  const active = (d.assignments || []).filter((a) =>
    ["dispatched", "en_route", "on_scene"].includes(a.status),
  );
  return { ...d, units: active.map((a) => a.callsign), call_count: (d.calls || []).length };
}

const fetching = new Map(); // id -> another event came while it was being fetched
/** One incident the board should show but does not hold (reopened, or a race at start). */
async function fetchOne(id) {
  if (outsideIncidents.has(id)) return; // another desk's: nothing to show
  if (fetching.has(id)) {
    fetching.set(id, true); // the answer may predate this event: ask once more after it
    return;
  }
  fetching.set(id, false);
  stats.fetchedOne += 1;
  try {
    const d = await get(`/api/incidents/${id}`);
    if (OPEN.has(d.status)) putIncident(rowFromDetail(d));
    else dropIncident(id);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) showError(err);
  } finally {
    const again = fetching.get(id);
    fetching.delete(id);
    if (again) fetchOne(id);
  }
}

// ---- snapshot: at start and after a gap the stream cannot fill ----------------------
let buffered = null; // events that arrive while a snapshot loads, applied after it
let snapshotIds = new Set(); // incidents the snapshot held (counted bumps must not double)
let replaying = false;
let loading = false;
let snapshotAgain = false;

// The server sends a desk only its boroughs (as the stream does); the board still checks.
function deskParam() {
  return desk.areas === null ? "" : `&areas=${encodeURIComponent(desk.areas.join(","))}`;
}

async function loadOpenIncidents() {
  const all = [];
  let after = 0;
  let counts = null;
  for (;;) {
    const page = await get(`/api/incidents/open?after_id=${after}&limit=${PAGE}${deskParam()}`);
    if (page.counts) counts = page.counts;
    all.push(...page.incidents);
    if (page.next_after_id == null) break;
    after = page.next_after_id;
  }
  return { all, counts };
}

async function loadSnapshot() {
  if (loading) {
    snapshotAgain = true; // one is loading: take another once it is in
    return;
  }
  loading = true;
  if (buffered === null) buffered = [];
  const t0 = performance.now();
  try {
    const [open, unitList, alarmList, types] = await Promise.all([
      loadOpenIncidents(),
      get(`/api/units?${deskParam().slice(1)}`),
      get("/api/alarms"),
      typeNames.size ? null : get("/api/incident-types").catch(() => []),
    ]);
    for (const t of types || []) typeNames.set(t.code, t.name);
    incidents.clear();
    outsideIncidents.clear();
    outsideUnits.clear();
    for (const inc of open.all) {
      if (inDesk(inc.area_code)) incidents.set(inc.id, keyed(inc));
      else outsideIncidents.add(inc.id);
    }
    ordered = [...incidents.values()];
    for (const inc of ordered) inc._in = true;
    added.length = 0;
    snapshotIds = new Set(incidents.keys());
    units.clear();
    for (const u of unitList) {
      if (inDesk(u.area_code)) units.set(u.id, u);
      else outsideUnits.add(u.id);
    }
    alarms.clear();
    const mine = alarmList.filter(alarmInDesk);
    for (const a of mine) alarms.set(a.id, a);
    emergencies.load(mine);
    stats.counts = { state: countsOf(), server: open.counts };
    const server = open.counts;
    // The server counts what it sent: London, or the desk's boroughs.
    if (server && server.open !== incidents.size) {
      // Moments apart, so a busy room can differ by a few; the events then settle it.
      console.warn("board snapshot count differs from the server's", incidents.size, server.open);
    }
    stats.snapshots += 1;
    stats.firstQueueMs = null;
  } catch (err) {
    showError(err);
    setTimeout(loadSnapshot, 5000);
  } finally {
    const pending = buffered;
    buffered = null;
    // Events are "set state": re-applying those the snapshot already reflects is harmless.
    replaying = true;
    for (const ev of pending) apply(ev);
    replaying = false;
    loading = false;
    snapshotIds = new Set();
    stats.snapshotMs = Math.round(performance.now() - t0);
    dirty.queue = dirty.units = dirty.alarms = dirty.areas = dirty.allMarkers = true;
    for (const id of units.keys()) dirty.unitMarkers.add(id);
    schedule();
    if (selectedId !== null) detailSoon();
    if (snapshotAgain) {
      snapshotAgain = false;
      loadSnapshot();
    }
  }
}

// ---- events --------------------------------------------------------------------------
function onEvent(ev) {
  if (buffered !== null) buffered.push(ev);
  else apply(ev);
}

function apply(ev) {
  stats.eventsApplied += 1;
  const d = ev.data || {};
  const id = ev.incident_id;
  const inc = id != null ? incidents.get(id) : undefined;
  switch (ev.type) {
    case "incident.created":
      if (!OPEN.has(d.status)) break;
      if (!inc) {
        putIncident({
          id,
          ref: d.ref,
          grade: d.grade,
          type_code: d.type_code,
          type_name: typeNames.get(d.type_code) || d.type_code,
          status: d.status,
          lat: d.lat,
          lng: d.lng,
          area_code: d.area_code,
          area: d.area || areaNames.get(d.area_code) || d.area_code,
          ward: d.ward,
          address_line: d.address_line,
          target_at: d.target_at,
          created_at: ev.at,
          units: [],
          call_count: 1,
        });
        if (!replaying) fresh.set(id, Date.now() + FRESH_MS);
      }
      // Events held back while a snapshot loads are new all the same: they cue too.
      if (d.grade === "I" && recent(ev) && inDesk(d.area_code)) mute.cue("urgent");
      break;
    case "incident.graded":
      patchIncident(id, { grade: d.to, target_at: d.target_at });
      break;
    case "incident.status":
    case "incident.returned_to_queue":
    case "incident.reopened": {
      const status = d.to || d.status;
      if (!OPEN.has(status)) dropIncident(id);
      else if (!patchIncident(id, { status })) fetchOne(id);
      break;
    }
    case "incident.closed":
    case "incident.merged":
      dropIncident(id);
      break;
    case "incident.merged_in":
      if (inc && !(replaying && snapshotIds.has(id))) {
        patchIncident(id, { call_count: (inc.call_count || 1) + (d.calls_moved || 0) });
      } else if (!inc) fetchOne(id);
      break;
    case "call.linked":
      if (inc && !(replaying && snapshotIds.has(id))) {
        patchIncident(id, { call_count: (inc.call_count || 1) + 1 });
      }
      break;
    case "unit.assigned": {
      const u = units.get(ev.unit_id);
      if (u) {
        Object.assign(u, {
          status: d.unit_status || "dispatched",
          incident_id: id,
          incident_ref: d.ref,
          incident_grade: d.grade,
          assignment_id: d.assignment_id,
        });
        changedUnit(u.id);
      }
      if (d.diverted_from != null && incidents.has(d.diverted_from)) {
        removeCallsign(incidents.get(d.diverted_from), d.callsign);
        changedIncident(d.diverted_from, false);
      }
      if (inc) {
        addCallsign(inc, d.callsign);
        patchIncident(id, { status: d.incident_status || inc.status });
      } else if (OPEN.has(d.incident_status)) {
        fetchOne(id);
      }
      break;
    }
    case "unit.status": {
      const u = units.get(ev.unit_id);
      const left =
        LEFT_JOB.has(d.assignment_status) ||
        (d.assignment_status == null && ["available", "off_duty"].includes(d.to));
      if (u) {
        u.status = d.to;
        u.status_at = ev.at;
        if (left) {
          u.incident_id = u.incident_ref = u.incident_grade = u.assignment_id = null;
        }
        changedUnit(u.id);
      }
      if (left && inc && d.callsign) {
        removeCallsign(inc, d.callsign);
        changedIncident(id, false);
      }
      if (selectedId !== null && id !== selectedId) recsSoon(d.from, d.to);
      break;
    }
    case "alarm.raised": {
      const alarm = {
        id: d.alarm_id,
        kind: d.kind,
        incident_id: id,
        unit_id: ev.unit_id,
        raised_at: ev.at,
        message: d.message,
      };
      if (!alarmInDesk(alarm)) break; // another desk's (the stream may not filter yet)
      alarms.set(d.alarm_id, alarm);
      emergencies.apply(ev);
      if (d.kind !== EMERGENCY_KIND && recent(ev)) mute.cue("alarm");
      dirty.alarms = true;
      schedule();
      break;
    }
    case "alarm.cleared":
      emergencies.apply(ev);
      if (alarms.delete(d.alarm_id)) {
        dirty.alarms = true;
        schedule();
      }
      break;
    default:
      break;
  }
  if (selectedId !== null && id === selectedId && !replaying) detailSoon();
}

function onPositions(list) {
  for (const p of list) {
    const u = units.get(p.id);
    if (!u) continue;
    u.lat = p.lat;
    u.lng = p.lng;
    u.position_at = p.at;
    stats.positionsApplied += 1;
    dirty.unitMarkers.add(u.id);
  }
  if (list.length) schedule();
}

/** An alarm is the desk's unless all it is about (incident, unit) is known to be elsewhere:
 * the server's rule (the incident's borough or the unit's home one), and an alarm about
 * something this board never saw (a closed incident) is shown rather than hidden. */
function alarmInDesk(a) {
  if (desk.areas === null) return true;
  const inc = a.incident_id != null ? incidents.has(a.incident_id) : false;
  const unit = a.unit_id != null ? units.has(a.unit_id) : false;
  if (inc || unit) return true;
  const incOut = a.incident_id != null && outsideIncidents.has(a.incident_id);
  const unitOut = a.unit_id != null && outsideUnits.has(a.unit_id);
  return !(incOut || unitOut);
}

const streamFilter = () => ({ areas: desk.areas });
const stream = new EventStream({
  onEvent,
  onPositions,
  onState: showConnState,
  onResync: () => loadSnapshot(),
  filter: streamFilter(),
  // Refused (a borough the server does not know): the stream carries London and the
  // board still shows only the desk, so nothing is missed and nothing extra is shown.
  onFilterRejected: (reason) => console.warn("desk filter refused by the server:", reason),
});

/** A new desk: show only its share at once, then resubscribe and reload the snapshot
 * (what lies in the new boroughs was never streamed to this page). */
function deskChanged(codes) {
  // What was outside the old desk may lie in the new one: only what leaves now is known.
  outsideIncidents.clear();
  outsideUnits.clear();
  for (const [id, inc] of incidents) {
    if (!inDesk(inc.area_code)) {
      dropIncident(id);
      outsideIncidents.add(id);
    }
  }
  for (const [id, u] of units) {
    if (!inDesk(u.area_code)) {
      units.delete(id);
      outsideUnits.add(id);
      dirty.unitMarkers.add(id);
    }
  }
  for (const [id, a] of alarms) if (!alarmInDesk(a)) alarms.delete(id);
  if (filters.area && codes && !codes.includes(filters.area)) {
    filters.area = ""; // the queue's own area choice lies outside the new desk
    saveFilters();
  }
  dirty.queue = dirty.units = dirty.alarms = dirty.areas = dirty.allMarkers = true;
  scroller.scrollTop = 0;
  schedule();
  map.showDesk(codes);
  if (!stream.setFilter(streamFilter())) loadSnapshot();
}

// ---- drawing: at most once per frame -------------------------------------------------
const dirty = {
  queue: false,
  units: false,
  alarms: false,
  areas: false,
  unitMarkers: new Set(), // unit ids whose marker may have changed
  allMarkers: false,
  markers: new Set(), // incident ids whose marker may have changed
};
const schedule = perFrame(render, 100, DRAW_GAP_MS);

function render() {
  const t0 = performance.now();
  if (dirty.queue) {
    dirty.queue = false;
    buildView();
    renderWindow(true);
    const ms = timed("queue", t0);
    if (stats.firstQueueMs === null && incidents.size) stats.firstQueueMs = ms;
  }
  if (dirty.areas) {
    dirty.areas = false;
    renderAreaOptions();
  }
  let t = performance.now();
  if (dirty.units) {
    dirty.units = false;
    renderUnits();
    timed("units", t);
  }
  if (dirty.alarms) {
    dirty.alarms = false;
    renderAlarms();
  }
  t = performance.now();
  for (const id of dirty.unitMarkers) {
    const u = units.get(id);
    if (u) map.upsertUnit(u);
    else map.removeUnit(id);
  }
  dirty.unitMarkers.clear();
  renderMarkers();
  timed("map", t);
  timed("render", t0);
  stats.renders += 1;
}

/** stats.<part>MsLast / MsMax: what each part of a draw costs (0.1 ms). */
function timed(part, t0) {
  const ms = Math.round((performance.now() - t0) * 10) / 10;
  stats[`${part}MsLast`] = ms;
  stats[`${part}MsMax`] = Math.max(stats[`${part}MsMax`] || 0, ms);
  return ms;
}

/** Markers change a thousand per frame at most, so a snapshot never blocks the page. */
let lastMarkers = -Infinity;
let markerTimer = null;
function renderMarkers() {
  if (!dirty.allMarkers && !dirty.markers.size) return;
  const wait = lastMarkers + MAP_GAP_MS - performance.now();
  if (!dirty.allMarkers && dirty.markers.size < BULK && wait > 0) {
    markerTimer ??= setTimeout(() => {
      markerTimer = null;
      schedule();
    }, wait);
    return;
  }
  lastMarkers = performance.now();
  if (dirty.allMarkers) {
    dirty.allMarkers = false;
    for (const id of map.incidentMarkers.keys()) if (!incidents.has(id)) dirty.markers.add(id);
    for (const id of incidents.keys()) dirty.markers.add(id);
  }
  let n = 0;
  for (const id of dirty.markers) {
    dirty.markers.delete(id);
    const inc = incidents.get(id);
    if (inc) map.upsertIncident(inc, id === selectedId);
    else map.removeIncident(id);
    if (++n >= MARKERS_PER_FRAME) break;
  }
  if (dirty.markers.size) schedule();
}

// ---- the queue: sorted by urgency, filtered, virtualised -----------------------------
let ordered = []; // every open incident by urgency, kept nearly sorted (cheap to re-sort)
let added = []; // incidents put since the last draw, not yet in `ordered`
let view = []; // what the list shows, in order
let viewIndex = null; // id -> position in view, built when asked (keyboard, selection)
let dropped = false; // an incident left since the last draw: `ordered` must be filtered

function indexInView(id) {
  if (viewIndex === null) {
    viewIndex = new Map();
    for (let i = 0; i < view.length; i++) viewIndex.set(view[i].id, i);
  }
  return viewIndex.get(id);
}
let rowH = 36;
let winFirst = -1;
let winLast = -1;
let laterCount = 0;
const scroller = $("#queue-scroll");
const sizer = $("#queue-sizer");
const table = $("#queue");
const tbody = $("#queue tbody");

// Target breached first (most overdue first), then soonest target: one ascending order of
// target time. Then grade, then age, then id so the order is total and stable.
function byUrgency(a, b) {
  return a._t - b._t || a._g - b._g || a._c - b._c || a.id - b.id;
}

function endOfToday() {
  const d = new Date();
  d.setHours(24, 0, 0, 0);
  return d.getTime();
}

function countsOf() {
  const now = Date.now();
  const c = { open: 0, by_grade: {}, by_status: { pending: 0, dispatched: 0, on_scene: 0 }, breached: 0 };
  for (const inc of incidents.values()) {
    c.open += 1;
    c.by_grade[inc.grade] = (c.by_grade[inc.grade] || 0) + 1;
    c.by_status[inc.status] = (c.by_status[inc.status] || 0) + 1;
    if (inc._t < now) c.breached += 1;
  }
  return c;
}

function buildView() {
  // Drop what left (or was replaced), add what came, re-sort: on an array that is already
  // nearly in order the sort is close to linear, so 10,000 cost little per draw. Arrays
  // are reused: a stream of draws must not feed the garbage collector.
  if (dropped) {
    ordered = ordered.filter((inc) => (inc._in = incidents.get(inc.id) === inc));
    dropped = false;
  }
  for (const inc of added) {
    if (!inc._in && incidents.get(inc.id) === inc) {
      inc._in = true;
      ordered.push(inc);
    }
  }
  added.length = 0;
  ordered.sort(byUrgency);
  const eot = endOfToday();
  const shown = (inc) =>
    filters.grades.has(inc.grade) &&
    (!filters.area || inc.area_code === filters.area) &&
    (!filters.status || inc.status === filters.status);
  // An appointment (E) nobody is on yet and not due today can wait below the fold.
  const later = (inc) =>
    inc.grade === "E" && inc.status === "pending" && inc._t > eot && inc._t !== Infinity;
  view.length = 0;
  laterCount = 0;
  for (const inc of ordered) {
    if (!shown(inc)) continue;
    if (later(inc)) laterCount += 1;
    else view.push(inc);
  }
  if (filters.showLater && laterCount) {
    for (const inc of ordered) if (shown(inc) && later(inc)) view.push(inc);
  }
  viewIndex = null;
  stats.shown = view.length;
  renderCounts();
  setStyle(sizer, "height", `${view.length * rowH}px`);
  const empty = $("#queue-empty");
  setStyle(empty, "display", view.length ? "none" : "");
  setText(empty, incidents.size ? "No incident matches the filters." : "No open incidents.");
  const fold = $("#queue-fold");
  if (fold.hidden !== (laterCount === 0)) fold.hidden = laterCount === 0;
  fold.setAttribute("aria-expanded", String(filters.showLater));
  setText(fold, filters.showLater
    ? `▾ ${laterCount.toLocaleString("en-GB")} appointments later (shown last) · fold away`
    : `▸ ${laterCount.toLocaleString("en-GB")} appointments later`);
}

/** Writes that change nothing still cost a layout: skip them. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setStyle(el, prop, value) {
  if (el.style[prop] !== value) el.style[prop] = value;
}

const num = new Intl.NumberFormat("en-GB");

function renderCounts() {
  const c = countsOf();
  setText($("#queue-count"), num.format(c.open));
  for (const g of grades.codes) {
    setText($(`#grade-filter [data-count="${g}"]`), num.format(c.by_grade[g] || 0));
  }
  for (const st of ["pending", "dispatched", "on_scene"]) {
    setText($(`#queue-counts [data-count="${st}"]`), num.format(c.by_status[st] || 0));
  }
  setText($(`#queue-counts [data-count="breached"]`), num.format(c.breached));
  const filtered = view.length + (filters.showLater ? 0 : laterCount) !== c.open;
  setText($("#queue-shown"), filtered ? `${num.format(view.length)} shown` : "");
}

function rowHtml(i) {
  const unitsText = (i.units || []).map((u) => u.callsign || u).join(", ");
  const isFresh = (fresh.get(i.id) || 0) > Date.now();
  const cls = [
    i.id === selectedId ? "selected" : "",
    isFresh ? "new" : "",
    i._t < Date.now() ? "breached" : "",
  ].join(" ");
  const where = i.address_line || i.area || i.area_code || "";
  const calls = i.call_count > 1 ? ` <span class="calls" title="calls">×${i.call_count}</span>` : "";
  return `<tr data-id="${i.id}" data-ref="${esc(i.ref)}" class="${cls}" tabindex="${i.id === focusId ? 0 : -1}">
    <td>${gradeBadge(i.grade)}</td>
    <td>${esc(i.ref)}${calls}</td>
    <td class="what"><div>${esc(i.type_name || i.type_code)}</div><div class="addr">${esc(where)}</div></td>
    <td>${statusChip(i.status)}</td>
    <td>${esc(unitsText)}</td>
    <td class="age">${ageText(i.created_at)}</td>
    <td>${countdownHtml(i.target_at)}</td></tr>`;
}

let focusId = null; // the row keyboard focus is on (roving tabindex)
const rowHtmlOf = new WeakMap(); // tr -> the html it was drawn from

/** Draw the rows in view (plus overscan); `force` redraws even if the window is the same. */
function renderWindow(force) {
  const h = scroller.clientHeight || 400;
  const top = scroller.scrollTop;
  const first = Math.max(0, Math.floor(top / rowH) - OVERSCAN);
  const last = Math.min(view.length, Math.ceil((top + h) / rowH) + OVERSCAN);
  if (!force && first === winFirst && last === winLast) return;
  winFirst = first;
  winLast = last;
  if (focusId === null && view.length) focusId = view[0].id;
  const hadFocus = tbody.contains(document.activeElement);
  setStyle(table, "transform", `translateY(${first * rowH}px)`);
  const html = [];
  for (let k = first; k < last; k++) html.push(rowHtml(view[k]));
  // Touch only the rows that changed: a call joining far down the list (or nothing visible
  // changing at all) must not cost a relayout of the rows on screen.
  const rows = tbody.children;
  const same = rows.length === html.length && html.every((_, k) => rows[k].dataset.id === String(view[first + k].id));
  if (same) {
    for (let k = 0; k < html.length; k++) {
      if (rowHtmlOf.get(rows[k]) !== html[k]) {
        const tpl = document.createElement("template");
        tpl.innerHTML = html[k];
        const tr = tpl.content.firstElementChild;
        rowHtmlOf.set(tr, html[k]);
        rows[k].replaceWith(tr);
      }
    }
  } else {
    tbody.innerHTML = html.join("");
    for (let k = 0; k < rows.length; k++) rowHtmlOf.set(rows[k], html[k]);
  }
  if (hadFocus && focusId !== null) {
    const tr = tbody.querySelector(`tr[data-id="${focusId}"]`);
    if (tr) tr.focus({ preventScroll: true });
  }
  if (!rowMeasured && tbody.firstElementChild) measureRow();
}

// The stylesheet decides the row height; measured once (a forced layout per draw is dear).
let rowMeasured = false;
function measureRow() {
  rowMeasured = true;
  const measured = tbody.firstElementChild.getBoundingClientRect().height;
  if (measured && Math.abs(measured - rowH) > 0.5) {
    rowH = measured;
    setStyle(sizer, "height", `${view.length * rowH}px`);
    renderWindow(true);
  }
}

const onScroll = perFrame(() => renderWindow(false), 50);
scroller.addEventListener("scroll", onScroll, { passive: true });
new ResizeObserver(() => renderWindow(false)).observe(scroller);

/** Scroll just enough to show row `k`, then draw it (keyboard moves past the window). */
function reveal(k) {
  const top = k * rowH;
  if (top < scroller.scrollTop) scroller.scrollTop = top;
  else if (top + rowH > scroller.scrollTop + scroller.clientHeight) {
    scroller.scrollTop = top + rowH - scroller.clientHeight;
  }
  renderWindow(true);
}

tbody.addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (tr) select(Number(tr.dataset.id));
});
tbody.addEventListener("focusin", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (tr) focusId = Number(tr.dataset.id);
});
tbody.addEventListener("keydown", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (!tr) return;
  const id = Number(tr.dataset.id);
  if (e.key === "Enter") {
    select(id);
    return;
  }
  const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[e.key];
  if (!step) return;
  e.preventDefault();
  const k = indexInView(id);
  if (k === undefined) return;
  const next = Math.max(0, Math.min(view.length - 1, k + step));
  focusId = view[next].id;
  reveal(next);
  const el = tbody.querySelector(`tr[data-id="${focusId}"]`);
  if (el) el.focus({ preventScroll: true });
});

// Filters
$("#grade-filter").innerHTML = grades.codes
  .map(
    (g) =>
      `<label data-grade="${esc(g)}"><input type="checkbox" value="${esc(g)}" checked> ${gradeBadge(g)} <b data-count="${esc(g)}">0</b></label>`,
  )
  .join("");
for (const box of document.querySelectorAll("#grade-filter input")) {
  box.checked = filters.grades.has(box.value);
  box.addEventListener("change", () => {
    if (box.checked) filters.grades.add(box.value);
    else filters.grades.delete(box.value);
    filtersChanged();
  });
}
$("#status-filter").value = filters.status;
$("#status-filter").addEventListener("change", (e) => {
  filters.status = e.target.value;
  filtersChanged();
});
$("#area-filter").addEventListener("change", (e) => {
  filters.area = e.target.value;
  filtersChanged();
});
$("#queue-fold").addEventListener("click", () => {
  filters.showLater = !filters.showLater;
  filtersChanged();
});

function filtersChanged() {
  saveFilters();
  scroller.scrollTop = 0;
  dirty.queue = true;
  schedule();
}

function renderAreaOptions() {
  const sel = $("#area-filter");
  const names = [...areaNames]
    .filter(([code]) => inDesk(code))
    .sort((a, b) => String(a[1]).localeCompare(String(b[1])));
  sel.innerHTML =
    `<option value="">All areas</option>` +
    names.map(([code, name]) => `<option value="${esc(code)}">${esc(name)}</option>`).join("");
  if (filters.area && !areaNames.has(filters.area)) {
    sel.insertAdjacentHTML("beforeend", `<option value="${esc(filters.area)}">${esc(filters.area)}</option>`);
  }
  sel.value = filters.area;
}

// Countdowns, ages and highlights tick on the visible rows only (one timer: one redraw a
// second); counts of breached follow the clock.
setInterval(() => {
  refreshCountdowns();
  let expired = false;
  const now = Date.now();
  for (const [id, until] of fresh) {
    if (until <= now) {
      fresh.delete(id);
      expired = true;
    }
  }
  if (expired) renderWindow(true);
  for (const tr of tbody.children) {
    const inc = incidents.get(Number(tr.dataset.id));
    if (inc) tr.children[5].textContent = ageText(inc.created_at);
  }
  setText($(`#queue-counts [data-count="breached"]`), num.format(countsOf().breached));
}, 1000);

// ---- unit board and alarms -------------------------------------------------------------
function renderUnits() {
  const groups = new Map(STATUS_ORDER.map((st) => [st, []]));
  for (const u of units.values()) {
    (groups.get(u.status) || groups.set(u.status, []).get(u.status)).push(u);
  }
  const html = [];
  for (const [st, list] of groups) {
    list.sort((a, b) => a.callsign.localeCompare(b.callsign));
    const body =
      st === "available" || st === "off_duty" || st === "unavailable"
        ? `<div class="unit-chips">${list
            .map(
              (u) =>
                `<span class="chip st-${st}" data-unit="${esc(u.callsign)}" data-status="${st}" title="${esc(u.unit_type)} · ${esc(u.home_station || "")}">${esc(u.callsign)}</span>`,
            )
            .join("")}</div>`
        : `<div class="unit-rows">${list
            .map(
              (u) =>
                `<div data-unit="${esc(u.callsign)}" data-status="${st}" data-incident="${u.incident_id ?? ""}"><strong>${esc(u.callsign)}</strong> → ${gradeBadge(u.incident_grade)} ${esc(u.incident_ref || "")}</div>`,
            )
            .join("")}</div>`;
    html.push(`<div class="unit-group" data-group="${st}">
      <h3>${statusChip(st)} <span class="count">${list.length}</span></h3>${list.length ? body : ""}</div>`);
  }
  $("#units").innerHTML = html.join("");
}

function renderAlarms() {
  const list = [...alarms.values()].sort(
    (a, b) => Date.parse(a.raised_at) - Date.parse(b.raised_at) || a.id - b.id,
  );
  $("#alarm-count").textContent = list.length.toLocaleString("en-GB");
  const more = list.length - ALARMS_SHOWN;
  $("#alarms").innerHTML = list.length
    ? list
        .slice(0, ALARMS_SHOWN)
        .map(
          (a) =>
            `<li data-incident="${a.incident_id ?? ""}">${esc(a.message)} <span class="hint">${fmtTime(a.raised_at)}</span></li>`,
        )
        .join("") +
      (more > 0 ? `<li class="hint">… and ${more.toLocaleString("en-GB")} more</li>` : "")
    : `<li class="empty">No alarms.</li>`;
}
$("#alarms").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-incident]");
  if (li && li.dataset.incident) select(Number(li.dataset.incident));
});

// ---- the selected incident -------------------------------------------------------------
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
// An event touching the selected incident refetches it: at once, then at most once per
// DETAIL_EVERY_MS while events keep coming (never postponed until they stop).
const detailSoon = throttle(loadDetail, DETAIL_EVERY_MS);

/** Another unit freed or taken can change who is recommended. */
function recsSoon(from, to) {
  if (from === "available" || to === "available") detailSoon();
}

function select(id) {
  const previous = selectedId;
  selectedId = id;
  focusId = id;
  conflict = null;
  detail = null;
  recs = null;
  $("#detail").innerHTML = `<div class="empty">Loading…</div>`;
  // The highlight moves at once, not with the next batch of markers.
  for (const k of [previous, id]) {
    const inc = k === null ? null : incidents.get(k);
    if (inc) map.upsertIncident(inc, k === id);
  }
  const k = indexInView(id);
  if (k !== undefined) reveal(k);
  else renderWindow(true);
  schedule();
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
    <td>${esc(r.label || r.status)}${r.position_age_s != null && r.position_age_s >= 300 ? ` <span class="stale" title="last position report">position ${Math.round(r.position_age_s / 60)} min old</span>` : ""}</td>
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
  // Keep what the dispatcher is typing: a refetch must not wipe a half-written form.
  const typing = document.activeElement && $("#detail").contains(document.activeElement);
  const kept = typing ? formValues() : null;
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
  const where = d.address_line || d.area || d.area_code || "";
  // What the caller said, only when it adds to the resolved line ("se1 7pb" does not).
  const squash = (t) => String(t || "").toUpperCase().replace(/[^A-Z0-9]/g, "");
  const said =
    d.address && squash(d.address) !== squash(d.location_label) ? `· caller said “${esc(d.address)}”` : "";
  $("#detail").innerHTML = `
    <h3 data-incident-id="${d.id}">${gradeBadge(d.grade)} ${esc(d.ref)} · ${esc(d.type_name || d.type_code)} ${statusChip(d.status)}</h3>
    <div class="meta">${esc(where)} · ${d.lat?.toFixed?.(4) ?? ""}, ${d.lng?.toFixed?.(4) ?? ""}
      ${said} · received ${fmtTime(d.call_received_at)}
      · ${(d.calls || []).length} call(s) · target ${open ? countdownHtml(d.target_at) : "—"}
      ${d.result_code ? "· result " + esc(d.result_code) : ""}</div>
    ${markerBanner(d.markers, { id: "detail-markers" })}
    ${
      d.history && (d.history.line || d.history.caller_line)
        ? `<div class="history" id="detail-history">${[d.history.line, d.history.caller_line]
            .filter(Boolean)
            .map((l) => `<div>${esc(l)}</div>`)
            .join("")}</div>`
        : ""
    }
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
        <form id="f-grade"><select name="grade" aria-label="New grade">${grades.codes
          .map((g) => `<option ${g === d.grade ? "selected" : ""}>${g}</option>`)
          .join("")}</select><input name="reason" placeholder="Reason for regrade" aria-label="Regrade reason" required minlength="3"><button>Regrade</button></form>
        <form id="f-close"><input name="result_code" list="result-codes" placeholder="Result code" aria-label="Result code" required><input name="remarks" placeholder="Closing remarks" aria-label="Closing remarks"><button class="danger">Close</button></form>
      </div>`
        : ""
    }`;
  if (kept) restoreForms(kept);
}

function formValues() {
  const out = { focus: null, values: {} };
  for (const el of document.querySelectorAll("#detail form [name]")) {
    const key = `${el.form.id}:${el.name}`;
    out.values[key] = el.value;
    if (el === document.activeElement) out.focus = key;
  }
  return out;
}

function restoreForms(kept) {
  for (const el of document.querySelectorAll("#detail form [name]")) {
    const key = `${el.form.id}:${el.name}`;
    if (key in kept.values) el.value = kept.values[key];
    if (key === kept.focus) el.focus();
  }
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
  // The board follows from the events; the detail shows the outcome now.
  await loadDetail();
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
    f.reset();
    (document.activeElement || {}).blur?.();
    await loadDetail();
  } catch (err) {
    showError(err);
  }
});

// ---- start ---------------------------------------------------------------------------
window.__cadDispatcher = { incidents, units, alarms, emergencies, select, stats, view: () => view };
// The stream first, buffering, so nothing that happens while the snapshot loads is lost.
buffered = [];
await stream.start();
loadSnapshot();
