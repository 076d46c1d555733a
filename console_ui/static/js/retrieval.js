// What the record says about a place, a caller or an incident: warning-marker banners,
// history lines, search snippets and a full incident view (calls, units, timeline). Shared
// by the search page, the handler's history overlay, the dispatcher and the unit phone.
import { esc, fmtTime, gradeBadge, statusChip } from "./common.js";

const SEVERITY = { high: 0, medium: 1, low: 2 };

export function fmtDate(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" });
}

/** "2 Dec", or "2 Dec 2025" when not this year: history is recent, lines stay short. */
export function fmtShortDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", ...(sameYear ? {} : { year: "numeric" }) });
}

export function fmtDateTime(iso) {
  if (!iso) return "";
  return `${fmtDate(iso)} ${fmtTime(iso)}`;
}

/** "2 Dec 18:11:54": a timeline's and a calls table's column. */
export function fmtShortDateTime(iso) {
  if (!iso) return "";
  return `${fmtShortDate(iso)} ${fmtTime(iso)}`;
}

/** How a marker came to be shown: what of the call it matched. */
export function markerHow(m) {
  const anchor =
    m.postcode != null
      ? `postcode ${m.postcode}`
      : m.phone != null
        ? `phone ${m.phone}`
        : m.radius_m != null
          ? `within ${m.radius_m} m of this location`
          : "";
  if (m.match === "location") return `matched: ${m.radius_m != null ? `within ${m.radius_m} m` : "location"}`;
  if (m.match === "postcode") return `matched: postcode${m.postcode ? ` ${m.postcode}` : ""}`;
  if (m.match === "phone") return `matched: caller's phone${m.phone ? ` ${m.phone}` : ""}`;
  return anchor;
}

/**
 * A red banner of warning markers, most severe first; "" when there are none. Officer
 * safety markers say so in words, not only in colour.
 */
export function markerBanner(markers, { id = "", title = "Warning markers" } = {}) {
  if (!markers || !markers.length) return "";
  const list = [...markers].sort(
    (a, b) => (SEVERITY[a.severity] ?? 9) - (SEVERITY[b.severity] ?? 9) || (b.id || 0) - (a.id || 0),
  );
  return `<section class="marker-banner" ${id ? `id="${esc(id)}"` : ""} role="alert"
      aria-label="${esc(title)}" data-count="${list.length}">
    <div class="mb-title">⚠ ${esc(title)} (${list.length})</div>
    <ul>${list
      .map(
        (m) => `<li data-marker-id="${Number(m.id) || ""}" data-category="${esc(m.category)}"
            data-severity="${esc(m.severity || "")}">
          <span class="mb-cat">${esc(m.category_name || m.category)}</span>${
            m.officer_safety ? ` <span class="mb-os">officer safety</span>` : ""
          }
          <span class="mb-text">${esc(m.text)}</span>
          <span class="mb-how">${esc(markerHow(m))}</span></li>`,
      )
      .join("")}</ul></section>`;
}

/** A search snippet: each part as text, the parts that matched inside <mark>. */
export function snippetHtml(parts) {
  if (!Array.isArray(parts)) return "";
  return parts.map((p) => (p && p.match ? `<mark>${esc(p.text)}</mark>` : esc(p && p.text))).join("");
}

function outcomeText(v) {
  return String(v ?? "").replace(/_/g, " ");
}

/**
 * A history item (location or caller) as one line: ref, type, grade, outcome, date.
 * `key` (1-based) labels the keyboard shortcut that opens it.
 */
export function historyItemHtml(it, key = null, keyLabel = (k) => `Alt+Shift+${k}`) {
  const id = it.incident_id ?? it.id;
  const ref = it.ref || "no incident";
  const inner = `${key ? `<kbd>${esc(keyLabel(key))}</kbd> ` : ""}${gradeBadge(it.grade)}
    <strong class="h-ref">${esc(ref)}</strong>
    <span class="h-type">${esc(it.type_name || it.type_code || "")}</span>
    <span class="h-outcome">${esc(outcomeText(it.outcome))}</span>
    <span class="h-date">${esc(fmtShortDate(it.created_at))}${
      it.distance_m != null ? ` · ${Math.round(it.distance_m)} m` : ""
    }</span>`;
  return id != null
    ? `<li><button type="button" class="h-item" data-open-incident="${Number(id)}"
         title="Open ${esc(ref)}">${inner}</button></li>`
    : `<li><span class="h-item">${inner}</span></li>`;
}

/** A timeline event in words. */
export function eventText(ev) {
  const d = ev.data || {};
  switch (ev.type) {
    case "incident.created":
      return `Created, grade ${d.grade ?? ""}${d.reason ? ` — ${d.reason}` : ""}`;
    case "incident.graded":
      return `Regraded ${d.from ?? ""} → ${d.to ?? ""}${d.reason ? `: ${d.reason}` : ""}`;
    case "incident.status":
      return `Status ${outcomeText(d.from)} → ${outcomeText(d.to)}`;
    case "incident.returned_to_queue":
      return `Returned to the queue${d.reason ? `: ${d.reason}` : ""}`;
    case "incident.remark":
      return `Remark: ${d.text ?? ""}`;
    case "incident.closed":
      return `Closed ${d.result_code ?? ""}${d.remarks ? `: ${d.remarks}` : ""}${d.reason ? ` (${d.reason})` : ""}`;
    case "incident.reopened":
      return `Reopened${d.reason ? `: ${d.reason}` : ""}`;
    case "incident.merged":
      return `Merged into ${d.into_ref ?? ""}${d.reason ? `: ${d.reason}` : ""}`;
    case "incident.merged_in":
      return `${d.from_ref ?? ""} merged in${d.reason ? `: ${d.reason}` : ""}`;
    case "incident.markers": {
      const names = (d.markers || []).map((m) => m.category_name || m.category);
      return `Warning markers recorded: ${names.join(", ") || "none"}`;
    }
    case "call.linked":
      return `Another call linked${d.type_code ? ` (${d.type_code})` : ""}`;
    case "unit.assigned":
      return `${d.callsign ?? "Unit"} assigned${d.auto ? " (auto)" : ""}`;
    case "unit.status":
      return `${d.callsign ?? "Unit"} ${outcomeText(d.from)} → ${outcomeText(d.to)}`;
    default:
      return ev.type;
  }
}

function historyBlock(h) {
  if (!h) return "";
  const lines = [h.line, h.caller_line].filter(Boolean);
  const items = [
    ...((h.location && h.location.items) || []),
    ...((h.caller && h.caller.items) || []).filter((c) => c.incident_id != null),
  ];
  const seen = new Set();
  const unique = items.filter((it) => {
    const id = it.incident_id ?? it.id;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  if (!lines.length && !unique.length) return "";
  return `<h2>History</h2>
    ${lines.map((l) => `<div class="history-line">${esc(l)}</div>`).join("")}
    ${unique.length ? `<ul class="history-items">${unique.map((it) => historyItemHtml(it)).join("")}</ul>` : ""}`;
}

/** The whole of GET /api/incidents/{id}: header, markers, history, calls, units, timeline. */
export function incidentDetailHtml(d) {
  const calls = (d.calls || [])
    .map(
      (c) => `<tr><td>${esc(fmtShortDateTime(c.received_at || c.created_at))}</td>
        <td>${esc(c.caller_name || "—")}</td><td>${esc(c.caller_phone || "")}</td>
        <td>${esc(outcomeText(c.outcome))}</td><td>${esc(c.description || "")}</td></tr>`,
    )
    .join("");
  const asg = (d.assignments || [])
    .map(
      (a) => `<tr><td><strong>${esc(a.callsign)}</strong></td><td>${statusChip(a.status)}</td>
        <td>${esc(fmtTime(a.dispatched_at))}</td><td>${esc(fmtTime(a.on_scene_at))}</td>
        <td>${esc(fmtTime(a.cleared_at))}</td></tr>`,
    )
    .join("");
  const timeline = (d.timeline || [])
    .map(
      (ev) => `<li data-type="${esc(ev.type)}"><time datetime="${esc(ev.at)}">${esc(fmtShortDateTime(ev.at))}</time>
        <span class="tl-text">${esc(eventText(ev))}</span> <span class="tl-actor">${esc(ev.actor || "")}</span></li>`,
    )
    .join("");
  const where = d.address_line || d.address || d.area || "";
  return `
    <h3 class="inc-head" data-incident-id="${Number(d.id)}">${gradeBadge(d.grade)}
      <span class="inc-ref">${esc(d.ref)}</span> ${statusChip(d.status)}</h3>
    <div class="inc-type">${esc(d.type_name || d.type_code)}${d.result_code ? ` · result ${esc(d.result_code)}` : ""}</div>
    <div class="inc-where">${esc(where)}</div>
    <div class="hint">Created ${esc(fmtDateTime(d.created_at))}${
      d.closed_at ? ` · closed ${esc(fmtDateTime(d.closed_at))}` : ""
    } · ${(d.calls || []).length} call(s)</div>
    ${markerBanner(d.markers, { title: "Warning markers recorded" })}
    ${d.description ? `<div class="inc-desc">${esc(d.description)}</div>` : ""}
    ${historyBlock(d.history)}
    ${calls ? `<h2>Calls</h2><table class="inc-calls"><thead><tr><th>Received</th><th>Caller</th><th>Phone</th><th>Outcome</th><th>Said</th></tr></thead><tbody>${calls}</tbody></table>` : ""}
    ${asg ? `<h2>Units</h2><table class="inc-units"><thead><tr><th>Unit</th><th>Status</th><th>Sent</th><th>On scene</th><th>Clear</th></tr></thead><tbody>${asg}</tbody></table>` : ""}
    <h2>Timeline</h2>
    ${timeline ? `<ol class="timeline">${timeline}</ol>` : `<div class="empty">No events.</div>`}`;
}

/** Open the search page (a ref goes straight to its incident there). */
export function searchUrl(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") u.set(k, v);
  return `/console/search/?${u}`;
}
