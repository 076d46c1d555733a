// The officer-emergency alarm on the dispatcher and supervisor consoles: a red modal over
// the whole console that only "Acknowledge" takes away (POST /api/alarms/{id}/acknowledge).
// Someone else acknowledging it (alarm.cleared) takes it away here too. It sounds until
// acknowledged, whatever the mute switch says: a routine cue may be muted, an officer
// asking for help may not.
import { ApiError } from "./api.js";
import { esc, fmtTime, showError, toast } from "./common.js";
import { ring } from "./sound.js";

export const EMERGENCY_KIND = "officer_emergency";
const RING_EVERY_MS = 3000;

export class EmergencyAlarms {
  /**
   * post(path, body) sends the acknowledgement; describe(alarm) may fill in callsign and
   * ref from what the console holds (GET /api/alarms rows carry only ids and a message).
   */
  constructor({ post, describe = () => ({}) }) {
    this.post = post;
    this.describe = describe;
    this.open = new Map(); // alarm id -> alarm
    this.busy = new Set(); // ids whose acknowledgement is on its way
    this.stopRing = null;
    this.sinceLoad = null;
    this.el = document.createElement("div");
    this.el.id = "emergency-alarm";
    this.el.className = "emergency-alarm";
    this.el.setAttribute("role", "alertdialog");
    this.el.setAttribute("aria-modal", "true");
    this.el.setAttribute("aria-labelledby", "ea-title");
    this.el.hidden = true;
    document.body.append(this.el);
    this.el.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-ack]");
      if (b) this.acknowledge(Number(b.dataset.ack));
    });
    // Nothing behind the modal takes a key while it is up; Escape does not close it.
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") e.preventDefault();
    });
    window.__cadEmergencies = this;
  }

  /** Call before reading GET /api/alarms when events are not held back meanwhile: what
   * the events say after this point wins over the (older) list. */
  beginLoad() {
    this.sinceLoad = new Map();
  }

  /** The open alarms from GET /api/alarms (every kind; only emergencies are kept). */
  load(list) {
    const later = this.sinceLoad || new Map();
    this.sinceLoad = null;
    const held = new Map(this.open); // what an event told us (callsign, ref…) stays
    this.open.clear();
    for (const a of list) {
      if (a.kind === EMERGENCY_KIND) this.open.set(a.id, { ...(held.get(a.id) || {}), ...a });
    }
    for (const [id, a] of later) {
      if (a) this.open.set(id, a);
      else this.open.delete(id);
    }
    this.render();
  }

  /** alarm.raised / alarm.cleared from the event stream. */
  apply(ev) {
    const d = ev.data || {};
    if (ev.type === "alarm.raised" && d.kind === EMERGENCY_KIND) {
      this.open.set(d.alarm_id, {
        id: d.alarm_id,
        kind: d.kind,
        incident_id: ev.incident_id,
        unit_id: ev.unit_id,
        raised_at: ev.at,
        message: d.message,
        callsign: d.callsign,
        ref: d.ref,
        position_age_s: d.position_age_s,
        assigned: d.assigned,
      });
      if (this.sinceLoad) this.sinceLoad.set(d.alarm_id, this.open.get(d.alarm_id));
      this.render();
    } else if (ev.type === "alarm.cleared") {
      if (this.sinceLoad) this.sinceLoad.set(d.alarm_id, null);
      if (!this.open.has(d.alarm_id)) return;
      this.open.delete(d.alarm_id);
      if (d.acknowledged_by) toast(`Emergency alarm acknowledged by ${d.acknowledged_by}`, "ok");
      this.render();
    }
  }

  async acknowledge(id) {
    if (this.busy.has(id)) return;
    this.busy.add(id);
    this.render();
    try {
      await this.post(`/api/alarms/${id}/acknowledge`, {});
      this.open.delete(id);
      toast("Emergency acknowledged", "ok");
    } catch (err) {
      if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
        this.open.delete(id); // someone else took it (or it is gone): nothing to hold up
        toast(err.message, "ok");
      } else {
        showError(err);
      }
    } finally {
      this.busy.delete(id);
      this.render();
    }
  }

  render() {
    const list = [...this.open.values()].sort(
      (a, b) => Date.parse(a.raised_at) - Date.parse(b.raised_at) || a.id - b.id,
    );
    const on = list.length > 0;
    const hadFocus = this.el.contains(document.activeElement);
    this.el.hidden = !on;
    // The console behind cannot be used (or tabbed into) until it is acknowledged.
    for (const region of document.querySelectorAll("body > header, body > main")) region.inert = on;
    document.body.classList.toggle("emergency-open", on);
    if (!on) {
      this.el.innerHTML = "";
      if (this.stopRing) this.stopRing();
      this.stopRing = null;
      return;
    }
    this.el.innerHTML = `<div class="ea-box">
      <h2 class="ea-title" id="ea-title">OFFICER EMERGENCY${list.length > 1 ? ` × ${list.length}` : ""}</h2>
      ${list.map((a) => this.itemHtml(a)).join("")}
    </div>`;
    if (!this.stopRing) this.stopRing = ring("emergency", RING_EVERY_MS);
    if (!hadFocus || !this.el.contains(document.activeElement)) {
      const first = this.el.querySelector("button[data-ack]:not([disabled])");
      if (first) first.focus();
    }
  }

  itemHtml(a) {
    const extra = this.describe(a) || {};
    const callsign = a.callsign || extra.callsign || "";
    const ref = a.ref || extra.ref || "";
    const age =
      a.position_age_s == null
        ? ""
        : `<div class="ea-age" data-position-age="${Number(a.position_age_s)}">Position ${Math.round(
            a.position_age_s,
          )} s old at the press</div>`;
    const sent =
      Array.isArray(a.assigned) && a.assigned.length
        ? `<div class="ea-sent">Sent: ${esc(a.assigned.map((c) => (typeof c === "string" ? c : c.callsign)).join(", "))}</div>`
        : "";
    return `<article class="ea-item" data-alarm-id="${a.id}" data-incident="${a.incident_id ?? ""}">
      ${callsign ? `<div class="ea-callsign">${esc(callsign)}</div>` : ""}
      ${ref ? `<div class="ea-ref">${esc(ref)}</div>` : ""}
      ${age}
      <div class="ea-msg">${esc(a.message || "")}</div>
      ${sent}
      <div class="ea-time">raised ${fmtTime(a.raised_at)}</div>
      <button type="button" class="ea-ack" data-ack="${a.id}" ${this.busy.has(a.id) ? "disabled" : ""}>Acknowledge</button>
    </article>`;
  }
}
