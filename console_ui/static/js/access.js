// The access log for supervisors: sign-ins, sign-outs, lockouts, account changes and
// reads of full records, newest first, filtered by user, action and time, paged back.
// Every value from the server goes in as text (textContent), never as markup.
import { ApiError, get, requireSession } from "./api.js";
import { $, showConnState, topbar } from "./common.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["supervisor", "admin"]);
topbar("Access log", s);

// A link may carry the filters (?username=…&action=…) and the page size (?limit=).
const initial = new URLSearchParams(location.search);
const PAGE = Math.min(1000, Math.max(1, Math.floor(Number(initial.get("limit"))) || 100));
let nextBefore = null;
let shown = 0;
let generation = 0; // a newer search discards the answers of older ones

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text ?? "";
  return td;
}

function fmtAt(iso) {
  return new Date(iso).toLocaleString("en-GB", {
    day: "2-digit",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

function row(e) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(e.id);
  tr.dataset.action = e.action;
  tr.dataset.outcome = e.outcome;
  const at = cell(fmtAt(e.at), "at");
  at.title = e.at;
  const outcome = document.createElement("td");
  const chip = document.createElement("span");
  chip.className = `chip outcome-${e.outcome}`;
  chip.textContent = e.outcome;
  outcome.append(chip);
  const ua = cell(e.user_agent || "—", "ua");
  if (e.user_agent) ua.title = e.user_agent;
  const detail = e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : "—";
  tr.append(
    at,
    cell(e.action, "action"),
    outcome,
    cell(e.username || "—", "user"),
    cell(e.target || "—", "target"),
    cell(e.address || "—", "address"),
    ua,
    cell(detail, "detail"),
  );
  return tr;
}

/** A datetime-local value as an ISO instant with its zone (the server insists on one). */
function isoOf(value) {
  if (!value) return null;
  const t = new Date(value); // no offset in the value: the browser's local time
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
}

function filters() {
  const q = new URLSearchParams();
  const user = $("#f-user").value.trim();
  const action = $("#f-action").value;
  const since = isoOf($("#f-since").value);
  const until = isoOf($("#f-until").value);
  if (since === undefined) throw new Error("From: not a valid time");
  if (until === undefined) throw new Error("To: not a valid time");
  if (since && until && until <= since) throw new Error("To must be after From");
  if (user) q.set("username", user);
  if (action) q.set("action", action);
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  return q;
}

let current = new URLSearchParams();

async function search(older = false) {
  const err = $("#access-error");
  err.textContent = "";
  const gen = older ? generation : ++generation;
  let q;
  try {
    q = older ? new URLSearchParams(current) : filters();
  } catch (e) {
    err.textContent = e.message;
    return;
  }
  if (!older) {
    current = q;
    const page = new URL(location.href);
    const shareable = new URLSearchParams(q);
    if (initial.has("limit")) shareable.set("limit", String(PAGE));
    page.search = shareable.toString();
    history.replaceState(null, "", page);
  }
  const params = new URLSearchParams(q);
  params.set("limit", String(PAGE));
  if (older && nextBefore) params.set("before_id", String(nextBefore));
  $("#older").disabled = true;
  let body;
  try {
    body = await get(`/api/access-log?${params}`);
  } catch (e) {
    if (gen !== generation) return;
    $("#older").disabled = false;
    err.textContent =
      e instanceof ApiError && e.errors.length
        ? e.errors.map((f) => `${f.field}: ${f.reason}`).join("; ")
        : e.message;
    return;
  }
  if (gen !== generation) return;
  const tbody = $("#access-log tbody");
  const rows = body.entries.map(row);
  if (older) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  shown = older ? shown + rows.length : rows.length;
  nextBefore = body.next_before_id;
  $("#older").hidden = nextBefore === null;
  $("#older").disabled = false;
  $("#access-empty").hidden = shown > 0;
  $("#access-summary").textContent = shown
    ? `${shown} entr${shown === 1 ? "y" : "ies"}, newest first` +
      (nextBefore === null ? " (to the start of the record)" : "")
    : "";
}

$("#f-user").value = initial.get("username") || "";
if (initial.get("action")) $("#f-action").value = initial.get("action");

$("#access-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  search();
});
$("#f-action").addEventListener("change", () => search());
$("#access-filters").addEventListener("reset", () => setTimeout(() => search(), 0));
$("#older").addEventListener("click", () => search(true));

// The stream only shows the connection state and ends the page with the session.
new EventStream({ onEvent: () => {}, onState: showConnState }).start();
search();
