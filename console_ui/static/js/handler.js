// Call handler console: keyboard-first call entry with a live grade preview. The location
// is one type-ahead field (postcode or place); AML coordinates and a map click still work
// and read back as "near SE1 7PB · Bishop's · Lambeth".
import { ApiError, get, post, requireSession } from "./api.js";
import {
  $,
  $$,
  countdownHtml,
  debounce,
  esc,
  gradeBadge,
  openSearch,
  showConnState,
  showError,
  tickCountdowns,
  toast,
  topbar,
} from "./common.js";
import { CadMap } from "./map.js";
import { attachPlaceSearch, placeLine } from "./places.js";
import { historyItemHtml, incidentDetailHtml, markerBanner, searchUrl } from "./retrieval.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["call_handler", "supervisor", "admin"]);
topbar("Call handling", s);
tickCountdowns();

const form = $("#call");
const typeSel = $("#type");
const typeFilter = $("#type-filter");
let types = [];
let dupList = []; // what Alt+1..5 links to
let historyList = []; // incident ids Alt+Shift+1..9 open
let offeredName = ""; // the name last given from this phone, offered (Alt+N), never filled
let attempt = null; // {key, json}: the Idempotency-Key is reused only for the same body
let busy = false;

const map = new CadMap($("#map"), {
  onClick(lat, lng) {
    $("#lat").value = lat.toFixed(5);
    $("#lng").value = lng.toFixed(5);
    $("#source").value = "map";
    clearFieldError($("[data-field='location.lat']"));
    clearFieldError($("[data-field='location.lng']"));
    pointChanged();
  },
});
map.loadAreas().catch(showError);

// ---- location: a picked place, or coordinates read back through reverse lookup ---------
const addressInput = $("#address");
const placeLineEl = $("#place-line");

function fmtPrecision(m) {
  if (m == null) return "";
  return m < 1000 ? `±${Math.round(m)} m` : `±${(m / 1000).toFixed(1)} km`;
}

function showPlaceLine(text, kind, detail = "") {
  placeLineEl.dataset.kind = kind;
  placeLineEl.innerHTML = text
    ? `<span class="line">${esc(text)}</span>${detail ? ` <span class="hint">${esc(detail)}</span>` : ""}`
    : "";
}

function clearSuggestions() {
  $("#place-suggest").innerHTML = "";
}

/** "Did you mean" buttons from a 422's suggestions; a click picks that place. */
let suggestions = [];
function showSuggestions(list) {
  suggestions = Array.isArray(list) ? list.slice(0, 5) : [];
  $("#place-suggest").innerHTML = suggestions.length
    ? `<span class="hint">Did you mean</span> ${suggestions
        .map(
          (h, i) =>
            `<button type="button" data-suggest="${i}" title="${esc(placeLine(h))}">${esc(h.label)}</button>`,
        )
        .join(" ")}`
    : "";
}
$("#place-suggest").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-suggest]");
  if (b) places.pickHit(suggestions[Number(b.dataset.suggest)]);
});

const places = attachPlaceSearch(addressInput, {
  limit: 8,
  onPick(hit, { via }) {
    // A place replaces coordinates: the call carries what the handler picked.
    $("#lat").value = "";
    $("#lng").value = "";
    reverseSeq += 1;
    clearSuggestions();
    clearFieldError(addressInput.closest("[data-field]"));
    const line = placeLine(hit);
    showPlaceLine(line, "place", [hit.kind, fmtPrecision(hit.precision_m)].filter(Boolean).join(" · "));
    map.setPin(hit.lat, hit.lng, line);
    map.focus(hit.lat, hit.lng, hit.kind === "postcode" ? 15 : 14);
    schedulePreview();
    if (via === "keyboard") $("#caller-name").focus();
  },
  onEdit(text) {
    // Typing a place supersedes coordinates and whatever was picked before.
    if (text.trim() && ($("#lat").value || $("#lng").value)) {
      $("#lat").value = "";
      $("#lng").value = "";
      reverseSeq += 1;
    }
    showPlaceLine("", "");
    clearSuggestions();
    map.setPin(null, null);
  },
});

addressInput.focus(); // where is the emergency: the first question

function currentPoint() {
  const lat = num($("#lat").value);
  const lng = num($("#lng").value);
  if (lat === null || lng === null || Number.isNaN(lat) || Number.isNaN(lng)) return null;
  if (Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
  return { lat, lng };
}

let reverseSeq = 0;
/** Coordinates changed (typed AML fix or map click): pin them and say where they are. */
async function pointChanged() {
  const p = currentPoint();
  const mine = ++reverseSeq;
  if (addressInput.value) places.clear();
  clearSuggestions();
  if (!p) {
    map.setPin(null, null);
    showPlaceLine("", "");
    return;
  }
  map.setPin(p.lat, p.lng);
  showPlaceLine("Looking up…", "pending");
  schedulePreview();
  try {
    const r = await get(`/api/places/reverse?lat=${p.lat}&lng=${p.lng}`);
    if (mine !== reverseSeq) return;
    const line = r.line || "no postcode nearby";
    const d = r.postcode && r.postcode.distance_m != null ? `postcode ${Math.round(r.postcode.distance_m)} m away` : "";
    showPlaceLine(line, "near", d);
    map.setPin(p.lat, p.lng, r.line || null);
  } catch (err) {
    if (mine !== reverseSeq) return;
    showPlaceLine(`No address for this point: ${err.message}`, "none");
  }
}
const schedulePoint = debounce(pointChanged, 200);

// The handler does not need live events, but the connection state shows the link is up.
new EventStream({ onEvent: () => {}, onState: showConnState }).start();

function fillTypes(filter = "") {
  const f = filter.trim().toLowerCase();
  const current = typeSel.value;
  const list = types.filter(
    (t) => !f || t.code.toLowerCase().includes(f) || t.name.toLowerCase().includes(f),
  );
  typeSel.innerHTML = list
    .map((t) => `<option value="${esc(t.code)}">${esc(t.name)} (${esc(t.code)})</option>`)
    .join("");
  if (list.some((t) => t.code === current)) typeSel.value = current;
  else if (f && list.length) typeSel.value = list[0].code;
  else typeSel.selectedIndex = -1;
}

async function loadTypes() {
  types = await get("/api/incident-types");
  types.sort((a, b) => a.name.localeCompare(b.name));
  // A handler may have typed the filter before the catalogue arrived: apply it now.
  fillTypes(typeFilter.value);
  if (typeFilter.value) schedulePreview();
}
loadTypes().catch(showError);

typeFilter.addEventListener("input", () => {
  fillTypes(typeFilter.value);
  schedulePreview();
});
typeFilter.addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || (e.key === "Enter" && !e.ctrlKey)) {
    e.preventDefault();
    if (typeSel.selectedIndex < 0 && typeSel.options.length) typeSel.selectedIndex = 0;
    if (e.key === "ArrowDown") typeSel.focus();
    else $("input[name=weapons]").focus();
    schedulePreview();
  }
});
typeSel.addEventListener("change", () => schedulePreview());

function num(v) {
  const t = String(v).trim();
  if (t === "") return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : NaN;
}

function riskBody() {
  const risk = {};
  for (const cb of $$("fieldset[data-field=risk] input[type=checkbox]")) {
    if (cb.checked) risk[cb.name] = true;
  }
  for (const k of ["threat", "harm", "risk"]) {
    const v = $(`#${k}`).value;
    if (v) risk[k] = v;
  }
  return risk;
}

function locationBody() {
  const lat = num($("#lat").value);
  const lng = num($("#lng").value);
  const address = addressInput.value.trim();
  if (address) return { address };
  if (lat !== null || lng !== null) return { lat, lng };
  return null;
}

function callBody() {
  const location = locationBody();
  const source = location && location.address ? "address" : $("#source").value;
  return {
    caller: { name: $("#caller-name").value.trim(), phone: $("#caller-phone").value.trim() },
    location: location || {},
    location_source: source,
    incident_type: typeSel.value || "",
    description: $("#description").value.trim(),
    risk: riskBody(),
  };
}

// ---- grade preview -------------------------------------------------------------------
let previewSeq = 0;
async function preview() {
  const type = typeSel.value;
  // Before a type is chosen the preview still brings the place's and the caller's history,
  // markers and duplicates: a handler needs them from the first seconds of the call.
  const body = type ? { incident_type: type, risk: riskBody() } : {};
  const caller = { name: $("#caller-name").value.trim(), phone: $("#caller-phone").value.trim() };
  if (caller.name || caller.phone) body.caller = caller;
  const loc = locationBody();
  // Half-typed text is the type-ahead's business; the preview takes a picked place, or
  // the text once the handler has left the field.
  const typing = loc && loc.address && !places.picked && document.activeElement === addressInput;
  if (
    loc &&
    !typing &&
    !Number.isNaN(loc.lat) &&
    !Number.isNaN(loc.lng) &&
    (loc.address ? loc.address.length >= 2 : true)
  ) {
    body.location = loc;
  }
  if (!type && !body.location && !(body.caller && body.caller.phone)) {
    $("#preview-body").innerHTML = `<span class="empty">Choose an incident type.</span>`;
    renderDups([]);
    renderHistory(null);
    renderMarkers([]);
    return;
  }
  const mine = ++previewSeq;
  try {
    const p = await post("/api/calls/grade-preview", body);
    if (mine !== previewSeq) return;
    const target = p.target_s ? `attend within ${Math.round(p.target_s / 60)} min` : "no timed target";
    $("#preview-body").innerHTML = `
      ${
        p.grade
          ? `<div data-grade="${esc(p.grade)}"><span class="grade grade-${esc(p.grade)} big">${esc(p.grade)}</span>
      <strong>${esc(p.grade_name)}</strong> · ${esc(target)}${p.auto_dispatch ? " · auto-dispatch" : ""}</div>
      <div class="reason">${esc(p.reason)} <span class="hint">(rule ${esc(p.rule)})</span></div>`
          : `<span class="empty">Choose an incident type.</span>`
      }
      ${
        p.address_line || p.area
          ? `<div class="hint" id="preview-where">Where: ${esc(p.address_line || p.area)}</div>`
          : ""
      }`;
    if (p.lat != null && body.location && body.location.address && !places.picked) {
      // Typed text the server resolved: show where it landed.
      map.setPin(p.lat, p.lng, p.address_line || null);
      if (p.address_line) showPlaceLine(p.address_line, "resolved");
    }
    renderDups(p.possible_duplicates || []);
    renderHistory(p.history || null, p);
    renderMarkers(p.markers || []);
  } catch (err) {
    if (mine !== previewSeq) return;
    // A location the server cannot resolve yet is normal while typing: grade without it.
    if (body.location && err instanceof ApiError && err.status === 422) {
      const errs = err.errors.filter((e) => e.field.startsWith("location"));
      if (errs.length) {
        $("#preview-body").innerHTML = `<span class="field-error">${esc(errs[0].reason)}</span>`;
        showSuggestions(err.body.suggestions);
        renderDups([]);
        renderHistory(null);
        renderMarkers([]);
        return;
      }
    }
    $("#preview-body").innerHTML = `<span class="field-error">${esc(err.message)}</span>`;
  }
}
const schedulePreview = debounce(preview, 250);
form.addEventListener("input", (e) => {
  if (e.target !== typeFilter) schedulePreview();
  clearFieldError(e.target.closest("[data-field]"));
});
addressInput.addEventListener("blur", () => schedulePreview());
form.addEventListener("change", () => schedulePreview());

function renderDups(list) {
  dupList = list.slice(0, 5);
  const el = $("#dups");
  if (!dupList.length) {
    el.innerHTML = "";
    return;
  }
  el.innerHTML = `<h2>Possible duplicates — link instead of a new incident</h2>
    <ul class="dups">${dupList
      .map(
        (d, i) => `<li>
          <button type="button" data-link="${d.id}" title="Link this call to ${esc(d.ref)}">
            <kbd>Alt+${i + 1}</kbd> Link</button>
          ${gradeBadge(d.grade)} <strong>${esc(d.ref)}</strong> ${esc(d.type_code)}
          <span class="hint">${d.distance_m} m · ${Math.round(d.age_s / 60)} min ago · score ${d.score}</span>
        </li>`,
      )
      .join("")}</ul>`;
}
$("#dups").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-link]");
  if (b) submit(Number(b.dataset.link));
});

// ---- history here and from this phone; warning markers; the repeat caller's name --------
const HISTORY_SHOWN = 5; // items per part; the search page has the rest

function renderHistory(h, p = {}) {
  historyList = [];
  const el = $("#history");
  renderCallerOffer(h);
  const loc = h && h.location;
  const caller = h && h.caller;
  if (!h || (!h.line && !h.caller_line && !(loc && loc.count) && !(caller && caller.count))) {
    el.innerHTML = "";
    return;
  }
  const keyed = (items) =>
    items
      .slice(0, HISTORY_SHOWN)
      .map((it) => {
        const id = it.incident_id ?? it.id;
        let key = null;
        if (id != null && historyList.length < 9) {
          historyList.push(id);
          key = historyList.length;
        }
        return historyItemHtml(it, key);
      })
      .join("");
  const nearUrl =
    loc && loc.count > HISTORY_SHOWN && p.lat != null && p.lng != null
      ? searchUrl({ near: `${p.lat},${p.lng},${loc.radius_m || 50}`, sort: "recent" })
      : "";
  const phone = $("#caller-phone").value.trim();
  const phoneUrl =
    caller && caller.count > HISTORY_SHOWN && phone ? searchUrl({ phone, sort: "recent" }) : "";
  el.innerHTML = `<h2>History</h2>
    ${
      h.line || (loc && loc.count)
        ? `<div class="history-part" id="history-location">
            <div class="history-line" id="history-line">${esc(h.line || "")}</div>
            <ul class="history-items">${keyed((loc && loc.items) || [])}</ul>
            ${nearUrl ? `<a href="${esc(nearUrl)}" data-search>All ${Number(loc.count)}${loc.capped ? "+" : ""} in search</a>` : ""}
          </div>`
        : ""
    }
    ${
      h.caller_line || (caller && caller.count)
        ? `<div class="history-part" id="history-caller">
            <div class="history-line" id="caller-line">${esc(h.caller_line || "")}</div>
            <ul class="history-items">${keyed((caller && caller.items) || [])}</ul>
            ${phoneUrl ? `<a href="${esc(phoneUrl)}" data-search>All ${Number(caller.count)}${caller.capped ? "+" : ""} in search</a>` : ""}
          </div>`
        : ""
    }`;
}
$("#history").addEventListener("click", (e) => {
  const b = e.target.closest("[data-open-incident]");
  if (b) openIncident(Number(b.dataset.openIncident));
  const a = e.target.closest("a[data-search]");
  if (a) {
    e.preventDefault();
    openSearch(a.getAttribute("href"));
  }
});

function renderMarkers(markers) {
  $("#markers").innerHTML = markerBanner(markers, { id: "marker-banner" });
}

const squashName = (t) => String(t || "").trim().replace(/\s+/g, " ").toLowerCase();

/** Offer the name last given from this phone when the field is empty or says otherwise. */
function renderCallerOffer(h) {
  if (h !== undefined) offeredName = (h && h.caller && h.caller.last_name) || "";
  const el = $("#caller-offer");
  const typed = $("#caller-name").value;
  if (!offeredName || squashName(typed) === squashName(offeredName)) {
    el.innerHTML = "";
    return;
  }
  el.innerHTML = `Last gave name: <strong>${esc(offeredName)}</strong>
    <button type="button" id="use-name"><kbd>Alt+N</kbd> use</button>`;
}
function useOfferedName() {
  if (!offeredName) return false;
  const input = $("#caller-name");
  input.value = offeredName;
  clearFieldError(input.closest("[data-field]"));
  renderCallerOffer();
  schedulePreview();
  return true;
}
$("#caller-offer").addEventListener("click", (e) => {
  if (e.target.closest("#use-name")) {
    useOfferedName();
    $("#caller-name").focus();
  }
});
$("#caller-name").addEventListener("input", () => renderCallerOffer());

// A previous incident opens over the form; closing it puts the handler back where they were.
const dialog = $("#inc-dialog");
let dialogReturn = null;
let dialogSeq = 0;
async function openIncident(id) {
  const mine = ++dialogSeq;
  if (!dialog.open) {
    dialogReturn = document.activeElement;
    dialog.showModal();
  }
  $("#inc-dialog-search").href = searchUrl({ id });
  $("#inc-dialog-body").innerHTML = `<div class="empty">Loading…</div>`;
  try {
    const d = await get(`/api/incidents/${id}`);
    if (mine !== dialogSeq) return;
    $("#inc-dialog-body").innerHTML = incidentDetailHtml(d);
  } catch (err) {
    if (mine !== dialogSeq) return;
    $("#inc-dialog-body").innerHTML = `<div class="field-error">${esc(err.message)}</div>`;
  }
  $("#inc-dialog-close").focus();
}
$("#inc-dialog-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  dialogSeq += 1;
  if (dialogReturn && dialogReturn.isConnected) dialogReturn.focus();
  dialogReturn = null;
});
$("#inc-dialog-body").addEventListener("click", (e) => {
  const b = e.target.closest("[data-open-incident]");
  if (b) openIncident(Number(b.dataset.openIncident));
});
$("#inc-dialog-search").addEventListener("click", (e) => {
  e.preventDefault();
  openSearch(e.currentTarget.getAttribute("href"));
});

// ---- submit --------------------------------------------------------------------------
function clearFieldError(fieldEl) {
  if (!fieldEl) return;
  fieldEl.classList.remove("invalid");
  const fe = fieldEl.querySelector(".field-error");
  if (fe) fe.textContent = "";
}

function clearErrors() {
  for (const f of $$("[data-field]")) clearFieldError(f);
  $("#form-error").textContent = "";
}

function showFieldErrors(err) {
  let shown = 0;
  let first = null;
  for (const e of err.errors) {
    let target = $(`[data-field="${CSS.escape(e.field)}"]`);
    if (!target) {
      // "location" or "caller" errors land on the first field of that group.
      const head = e.field.split(".")[0];
      target =
        $(`[data-alias="${CSS.escape(head)}"]`) ||
        $(`[data-field^="${CSS.escape(head)}"]`) ||
        null;
    }
    if (!target) continue;
    target.classList.add("invalid");
    const fe = target.querySelector(".field-error");
    if (fe) fe.textContent = e.reason;
    shown += 1;
    first = first || target;
  }
  if (first) {
    const input = first.querySelector("input, select, textarea");
    if (input) input.focus();
  }
  if (!shown) $("#form-error").textContent = err.message;
}

async function submit(linkTo = null) {
  if (busy) return;
  clearErrors();
  const body = callBody();
  if (linkTo) {
    body.link_to = linkTo;
    // Linked to an incident, the call takes its location unless one was given.
    if (!locationBody()) delete body.location;
  }
  if (!body.incident_type) {
    showFieldErrors(new ApiError(422, { detail: "choose an incident type", errors: [{ field: "incident_type", reason: "choose an incident type" }] }));
    return;
  }
  const json = JSON.stringify(body);
  if (!attempt || attempt.json !== json) attempt = { key: crypto.randomUUID(), json };
  busy = true;
  $("#submit").disabled = true;
  try {
    const res = await post("/api/calls", body, { headers: { "Idempotency-Key": attempt.key } });
    attempt = null;
    showResult(res, linkTo);
    resetForm();
  } catch (err) {
    if (err instanceof ApiError && err.status === 422) {
      showFieldErrors(err);
      showSuggestions(err.body.suggestions);
    } else {
      $("#form-error").textContent = err.message;
      showError(err);
    }
  } finally {
    busy = false;
    $("#submit").disabled = false;
  }
}

function showResult(res, linkTo) {
  const inc = res.incident;
  const g = res.grading;
  const el = $("#result-body");
  el.classList.remove("empty");
  if (!inc) {
    el.innerHTML = `<div>Call closed: ${esc(res.call.outcome)}</div>`;
    return;
  }
  const verb = linkTo ? "Linked to" : inc.status === "closed" ? "Recorded and closed" : "Created";
  const dups = (res.possible_duplicates || []).filter((d) => d.id !== inc.id);
  el.innerHTML = `
    <div>${esc(verb)} <span class="ref" id="result-ref">${esc(inc.ref)}</span>
      ${gradeBadge(inc.grade)} ${esc(inc.grade_name || "")} · ${esc(inc.type_name || inc.type_code)}
      ${inc.address_line || inc.area ? `· ${esc(inc.address_line || inc.area)}` : ""}</div>
    <div>Target: ${inc.status === "closed" ? "— (closed on creation)" : countdownHtml(inc.target_at)}
      · status ${esc(inc.status)}</div>
    <div class="hint">${esc(g.reason)} (rule ${esc(g.rule)})</div>
    ${
      dups.length && !linkTo
        ? `<div class="hint">Flagged to the dispatcher as a possible duplicate of ${dups
            .map((d) => esc(d.ref))
            .join(", ")}</div>`
        : ""
    }`;
  toast(`${verb} ${inc.ref} (grade ${inc.grade})`, "ok");
}

function resetForm() {
  form.reset();
  typeFilter.value = "";
  fillTypes();
  attempt = null;
  places.clear();
  reverseSeq += 1;
  showPlaceLine("", "");
  clearSuggestions();
  map.setPin(null, null);
  clearErrors();
  renderDups([]);
  renderHistory(null);
  renderMarkers([]);
  if (dialog.open) dialog.close();
  $("#preview-body").innerHTML = `<span class="empty">Choose an incident type.</span>`;
  addressInput.focus();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
$("#new-call").addEventListener("click", resetForm);
document.addEventListener("keydown", (e) => {
  if (dialog.open) return; // the overlay has its own keys (Esc closes it)
  if (e.altKey && e.shiftKey && /^Digit[1-9]$/.test(e.code)) {
    // By code, not key: Shift turns the digit into a symbol on most layouts.
    const id = historyList[Number(e.code.slice(5)) - 1];
    if (id != null) {
      e.preventDefault();
      openIncident(id);
    }
  } else if (e.altKey && !e.shiftKey && e.code === "KeyN") {
    if (useOfferedName()) e.preventDefault();
  } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    submit();
  } else if (e.altKey && /^[1-5]$/.test(e.key)) {
    const d = dupList[Number(e.key) - 1];
    if (d) {
      e.preventDefault();
      submit(d.id);
    }
  } else if (e.key === "Escape") {
    e.preventDefault();
    resetForm();
  }
});
for (const id of ["lat", "lng"]) {
  $(`#${id}`).addEventListener("input", () => {
    if ($("#source").value === "map") $("#source").value = "aml";
    schedulePoint();
  });
}
window.__cadHandler = { submit, resetForm, places, openIncident };
