// Search console: one query box and filters over every incident on record, results with
// their matching words highlighted, and the chosen incident's full record beside them.
// The URL carries the query (?q=…&grade=…&id=N), so a link, a reload and Back all work.
import { ApiError, get, requireSession } from "./api.js";
import {
  $,
  $$,
  esc,
  gradeBadge,
  loadGrades,
  showConnState,
  showError,
  statusChip,
  throttle,
  topbar,
} from "./common.js";
import { fmtDateTime, incidentDetailHtml, snippetHtml } from "./retrieval.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["call_handler", "dispatcher", "supervisor", "admin"]);
topbar("Search", s, { current: "search" });

const PARAMS = ["q", "from", "to", "grade", "type", "status", "area", "ward", "unit", "phone", "postcode", "near", "sort"];
const PAGE = 20;
const form = $("#search-form");
const list = $("#results");
let results = [];
let cursor = null;
let current = {}; // the parameters of the results shown
let searchSeq = 0;
let openId = null;
let panelSeq = 0;

// ---- the URL and the form ---------------------------------------------------------------
function fromUrl() {
  const u = new URLSearchParams(location.search);
  const p = {};
  for (const k of PARAMS) {
    const v = u.get(k);
    if (v) p[k] = v;
  }
  const id = Number(u.get("id"));
  return { params: p, id: Number.isInteger(id) && id > 0 ? id : null };
}

function urlFor(params, id) {
  const u = new URLSearchParams();
  for (const k of PARAMS) if (params[k]) u.set(k, params[k]);
  if (id) u.set("id", String(id));
  const qs = u.toString();
  return `${location.pathname}${qs ? `?${qs}` : ""}`;
}

// The form picks whole days on the desk's clock; the API takes instants with a zone and a
// half-open range, so "to" is the start of the day after the one chosen.
function dayStartIso(day, plusDays = 0) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day || "")) return "";
  const [y, m, d] = day.split("-").map(Number);
  const t = new Date(y, m - 1, d + plusDays);
  return Number.isNaN(t.getTime()) ? "" : t.toISOString();
}

function isoToDay(iso, minusDays = 0) {
  const t = new Date(iso);
  if (!iso || Number.isNaN(t.getTime())) return "";
  // An instant part-way through a day stands for that day whichever end it is.
  const midnight = t.getHours() === 0 && t.getMinutes() === 0 && t.getSeconds() === 0;
  if (minusDays && midnight) t.setDate(t.getDate() - minusDays);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
}

function formParams() {
  const p = {};
  const text = (id) => $(id).value.trim();
  if (text("#q")) p.q = text("#q");
  if (dayStartIso($("#f-from").value)) p.from = dayStartIso($("#f-from").value);
  if (dayStartIso($("#f-to").value, 1)) p.to = dayStartIso($("#f-to").value, 1);
  const grades = $$("input[name=grade]:checked").map((c) => c.value);
  if (grades.length) p.grade = grades.join(",");
  for (const [k, id] of [
    ["type", "#f-type"],
    ["status", "#f-status"],
    ["sort", "#f-sort"],
    ["area", "#f-area"],
    ["ward", "#f-ward"],
    ["unit", "#f-unit"],
    ["phone", "#f-phone"],
    ["postcode", "#f-postcode"],
    ["near", "#f-near"],
  ]) {
    if (text(id)) p[k] = text(id);
  }
  return p;
}

/** A select shows a value from a link even when it is not one of its options. */
function setSelect(sel, value) {
  if (value && ![...sel.options].some((o) => o.value === value)) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = value.replace(/,/g, ", ");
    sel.append(o);
  }
  sel.value = value || "";
}

function fillForm(p) {
  $("#q").value = p.q || "";
  $("#f-from").value = isoToDay(p.from);
  $("#f-to").value = isoToDay(p.to, 1);
  const grades = new Set((p.grade || "").split(",").filter(Boolean));
  for (const c of $$("input[name=grade]")) c.checked = grades.has(c.value);
  setSelect($("#f-type"), p.type);
  setSelect($("#f-status"), p.status);
  setSelect($("#f-sort"), p.sort);
  for (const k of ["area", "ward", "unit", "phone", "postcode", "near"]) $(`#f-${k}`).value = p[k] || "";
}

// ---- search --------------------------------------------------------------------------
function clearFieldErrors() {
  $("#search-error").innerHTML = "";
  for (const f of $$("[data-param].invalid")) f.classList.remove("invalid");
}

function showSearchError(err) {
  if (err instanceof ApiError && err.status === 422) {
    const errs = err.errors.length ? err.errors : [{ field: "", reason: err.message }];
    for (const e of errs) {
      const name = String(e.field || "").split(".").pop();
      const f = name && $(`[data-param="${CSS.escape(name)}"]`);
      if (f) f.classList.add("invalid");
    }
    $("#search-error").innerHTML = errs
      .map((e) => `<div>${e.field ? `${esc(String(e.field).split(".").pop())}: ` : ""}${esc(e.reason)}</div>`)
      .join("");
  } else {
    $("#search-error").textContent = err.message || String(err);
    showError(err);
  }
}

function hasCriteria(p) {
  return PARAMS.some((k) => k !== "sort" && p[k]);
}

async function runSearch(params, { more = false } = {}) {
  const mine = ++searchSeq;
  clearFieldErrors();
  if (!more) {
    current = params;
    results = [];
    cursor = null;
  }
  if (!hasCriteria(params)) {
    render();
    return null;
  }
  const u = new URLSearchParams();
  for (const k of PARAMS) if (params[k]) u.set(k, params[k]);
  u.set("limit", String(PAGE));
  if (more && cursor) u.set("cursor", cursor);
  $("#results-empty").textContent = "Searching…";
  form.setAttribute("aria-busy", "true");
  try {
    const r = await get(`/api/search?${u}`);
    if (mine !== searchSeq) return null;
    results = more ? results.concat(r.results || []) : r.results || [];
    cursor = r.next_cursor || null;
    render();
    return r;
  } catch (err) {
    if (mine !== searchSeq) return null;
    showSearchError(err);
    render();
    return null;
  } finally {
    if (mine === searchSeq) form.removeAttribute("aria-busy");
  }
}

function resultHtml(r, i) {
  const when = fmtDateTime(r.created_at);
  const units = (r.units || []).join(", ");
  const snippet = snippetHtml(r.snippet);
  return `<li>
    <a class="result" href="${esc(urlFor(current, r.id))}" data-id="${Number(r.id)}" data-index="${i}"
       data-matched="${esc(r.matched || "")}" ${r.id === openId ? 'aria-current="true"' : ""}>
      <span class="r-grade">${gradeBadge(r.grade)}</span>
      <span class="r-ref">${esc(r.ref)}</span>
      <span class="r-type">${esc(r.type_name || r.type_code)}</span>
      <span class="r-status">${statusChip(r.status)}${r.result_code ? ` <span class="hint">${esc(r.result_code)}</span>` : ""}</span>
      <span class="r-date">${esc(when)}</span>
      <span class="r-where">${esc(r.address_line || r.area || "")}</span>
      <span class="r-meta">${r.call_count > 1 ? `${Number(r.call_count)} calls` : ""}${units ? ` · ${esc(units)}` : ""}${
        r.matched === "reference" ? " · reference" : ""
      }</span>
      ${snippet ? `<span class="r-snippet">${snippet}</span>` : ""}
    </a></li>`;
}

function render() {
  list.innerHTML = results.map(resultHtml).join("");
  const empty = $("#results-empty");
  empty.hidden = results.length > 0;
  empty.textContent = hasCriteria(current) ? "Nothing found." : "Type a query or choose a filter.";
  $("#more").hidden = !cursor;
  $("#result-count").textContent = results.length
    ? `${results.length}${cursor ? "+" : ""} shown`
    : "";
}

/** A new search from the form: it goes into the history, so Back returns to the last. */
async function submitSearch() {
  const params = formParams();
  history.pushState(null, "", urlFor(params, null));
  closePanel({ keepUrl: true });
  const r = await runSearch(params);
  // A reference goes straight to its incident.
  if (r && r.reference) openIncident(r.reference.id, { replace: true });
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  submitSearch();
});
$("#clear").addEventListener("click", () => {
  fillForm({});
  submitSearch();
  $("#q").focus();
});
$("#more").addEventListener("click", async () => {
  const before = results.length;
  await runSearch(current, { more: true });
  // Keyboard users carry on where the new page starts.
  const next = list.querySelector(`a.result[data-index="${before}"]`);
  if (next) next.focus();
});

list.addEventListener("click", (e) => {
  const a = e.target.closest("a.result");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return; // a new tab: let it
  e.preventDefault();
  openIncident(Number(a.dataset.id));
});
list.addEventListener("keydown", (e) => {
  const a = e.target.closest("a.result");
  if (!a) return;
  const links = $$("a.result", list);
  const k = links.indexOf(a);
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const next = links[k + (e.key === "ArrowDown" ? 1 : -1)];
    if (next) next.focus();
    else if (e.key === "ArrowUp") $("#q").focus();
  }
});
$("#q").addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown") {
    const first = list.querySelector("a.result");
    if (first) {
      e.preventDefault();
      first.focus();
    }
  }
});

// ---- the incident panel --------------------------------------------------------------
async function loadPanel() {
  if (openId === null) return;
  const id = openId;
  const mine = ++panelSeq;
  try {
    const d = await get(`/api/incidents/${id}`);
    if (mine !== panelSeq || id !== openId) return;
    $("#panel-body").innerHTML = incidentDetailHtml(d);
    $("#panel").dataset.incidentId = String(id);
  } catch (err) {
    if (mine !== panelSeq) return;
    $("#panel-body").innerHTML = `<div class="field-error">${esc(err.message)}</div>`;
  }
}
// Events on the open incident refetch it: at once, then at most once a second.
const panelSoon = throttle(loadPanel, 1000);

function openIncident(id, { replace = true } = {}) {
  openId = id;
  const panel = $("#panel");
  panel.hidden = false;
  document.body.classList.add("with-panel");
  delete panel.dataset.incidentId;
  $("#panel-body").innerHTML = `<div class="empty">Loading…</div>`;
  const url = urlFor(current, id);
  $("#panel-link").href = url;
  if (replace) history.replaceState(null, "", url);
  for (const a of $$("a.result", list)) {
    if (Number(a.dataset.id) === id) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
  }
  return loadPanel();
}

function closePanel({ keepUrl = false } = {}) {
  if (openId === null) return;
  // Focus inside the panel goes back to the result it came from; elsewhere it stays.
  const back = $("#panel").contains(document.activeElement)
    ? list.querySelector(`a.result[data-id="${openId}"]`)
    : null;
  openId = null;
  panelSeq += 1;
  $("#panel").hidden = true;
  document.body.classList.remove("with-panel");
  for (const a of $$("a.result[aria-current]", list)) a.removeAttribute("aria-current");
  if (!keepUrl) history.replaceState(null, "", urlFor(current, null));
  if (back) back.focus();
}

$("#panel-close").addEventListener("click", () => closePanel());
$("#panel-body").addEventListener("click", (e) => {
  const b = e.target.closest("[data-open-incident]");
  if (b) openIncident(Number(b.dataset.openIncident));
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && openId !== null) {
    e.preventDefault();
    closePanel();
  }
});

// ---- start ---------------------------------------------------------------------------
async function fromLocation() {
  const { params, id } = fromUrl();
  fillForm(params);
  const r = await runSearch(params);
  if (id) openIncident(id);
  else if (r && r.reference) openIncident(r.reference.id);
  else closePanel({ keepUrl: true });
}
window.addEventListener("popstate", () => fromLocation());

async function loadChoices() {
  const [types, areas, grades] = await Promise.all([
    get("/api/incident-types"),
    get("/api/areas").catch(() => null),
    loadGrades(get),
  ]);
  $("#f-grades").innerHTML =
    "<legend>Grade</legend>" +
    grades.codes
      .map((g) => `<label><input type="checkbox" name="grade" value="${esc(g)}"> ${gradeBadge(g)}</label>`)
      .join("");
  const typeSel = $("#f-type");
  const chosen = typeSel.value;
  types.sort((a, b) => a.name.localeCompare(b.name));
  typeSel.innerHTML =
    `<option value="">Any type</option>` +
    types.map((t) => `<option value="${esc(t.code)}">${esc(t.name)}</option>`).join("");
  setSelect(typeSel, chosen);
  const names = ((areas && areas.features) || [])
    .map((f) => f.properties && f.properties.name)
    .filter(Boolean)
    .sort();
  $("#area-names").innerHTML = [...new Set(names)].map((n) => `<option value="${esc(n)}">`).join("");
}

await loadChoices().catch(showError);
// The stream keeps an open incident's record current and shows the link is up.
new EventStream({
  onEvent: (ev) => {
    if (openId !== null && ev.incident_id === openId) panelSoon();
  },
  onState: showConnState,
  onResync: () => panelSoon(),
}).start();
await fromLocation();
if (!$("#q").value) $("#q").focus();
window.__cadSearch = { openIncident, runSearch, state: () => ({ results, cursor, openId, current }) };
