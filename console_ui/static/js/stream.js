// The live event stream: WebSocket with resume-from-seq, backoff, de-duplication and a
// polling fallback. Each console sees every event exactly once, in seq order, whatever
// happens to the socket.
import { api, refreshSession, session, sessionEnded } from "./api.js";

const HEAD = "4611686018427387903"; // 2**62 - 1: "nothing after this" yields just last_seq
const POLL_MS = 2000;
const WS_RETRY_WHILE_POLLING_MS = 15000;
const FAILURES_BEFORE_POLLING = 3;
const FILTER_FIELDS = ["areas", "grades", "kinds"];

/** {areas, grades, kinds}: each a sorted, de-duplicated array, or null for "all". */
export function normFilter(filter) {
  const out = { areas: null, grades: null, kinds: null };
  for (const k of FILTER_FIELDS) {
    const v = filter ? filter[k] : null;
    if (Array.isArray(v) && v.length) out[k] = [...new Set(v.map(String))].sort();
  }
  return out;
}

function sameFilter(a, b) {
  return FILTER_FIELDS.every((k) => (a[k] || []).join(",") === (b[k] || []).join(","));
}

/** The filter as query parameters ("" for none), each starting with "&". */
function filterQuery(filter) {
  let q = "";
  for (const k of FILTER_FIELDS) {
    if (filter[k]) q += `&${k}=${filter[k].map(encodeURIComponent).join(",")}`;
  }
  return q;
}

export class EventStream {
  /**
   * onEvent(ev) for each new event; onState(state) with live | reconnecting | polling |
   * offline | connecting; onResync() when the page should reload its snapshot because
   * events cannot be replayed (a unit's polling, or a first connection without a seq).
   * pollEvents=false for roles that may not read /api/events (units): polling then
   * means calling onResync. onPositions(units) receives the socket's unsequenced
   * position batches ([{id, lat, lng, at}], only units that moved); they are not
   * replayed after a gap, so a console keeps positions from its snapshot until then.
   *
   * filter {areas, grades, kinds} (arrays of codes, or null for all) narrows what the
   * server sends, on the socket and in polling alike; setFilter() changes it. A filter
   * the server refuses (close 4422, or a 422 while polling) calls
   * onFilterRejected(reason) and the stream carries on unfiltered: a superset, so
   * nothing is missed (a page that filters what it shows needs do nothing more).
   * Frames may be batches ({"type": "batch", "events": [...]}, asked for with batch=1);
   * each event reaches onEvent on its own, exactly once and in seq order.
   */
  constructor({
    onEvent,
    onState = () => {},
    onResync = () => {},
    onPositions = () => {},
    pollEvents = true,
    filter = null,
    onFilterRejected = (reason) => console.warn("event filter refused:", reason),
  }) {
    this.onEvent = onEvent;
    this.onPositions = onPositions;
    this.onStateCb = onState;
    this.onResync = onResync;
    this.pollEvents = pollEvents;
    this.filter = normFilter(filter);
    this.filterRejected = false; // the server refused this.filter: ask unfiltered
    this.onFilterRejected = onFilterRejected;
    this.serverFilter = null; // the filter the last hello echoed (null: none applied)
    const s = session();
    this.storeKey = `cad.lastSeq.${s.username}`;
    const stored = sessionStorage.getItem(this.storeKey);
    this.lastSeq = stored === null ? null : Number(stored);
    this.ws = null;
    this.state = "connecting";
    this.failures = 0;
    this.attempt = 0;
    this.retryTimer = null;
    this.pollTimer = null;
    this.stopped = false;
    this.received = 0;
    this._firstReady = null;
    window.__cadStream = this; // tests force-close the socket through this
    window.addEventListener("offline", () => this._setState("offline"));
    window.addEventListener("online", () => this._reconnectNow());
  }

  /** Resolves once the stream is live or polling (the page then loads its snapshot). */
  start() {
    return new Promise((resolve) => {
      this._firstReady = resolve;
      this._connect();
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pollTimer);
    if (this.ws) this.ws.close();
  }

  /**
   * Narrow (or widen) the stream to a new filter. Events outside the old one were never
   * received, so this starts afresh: the seq is forgotten (no stale seq skips anything),
   * the socket reopens with the new filter, and onResync() asks the page to reload its
   * snapshot. Returns false (and does nothing) when the filter is the same.
   */
  setFilter(filter) {
    const next = normFilter(filter);
    if (sameFilter(next, this.filter) && !this.filterRejected) return false;
    this.filter = next;
    this.filterRejected = false;
    this.lastSeq = null;
    sessionStorage.removeItem(this.storeKey);
    if (this.stopped) return true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null; // its close is not a failure: onclose ignores a socket no longer ours
    if (ws) ws.close(1000, "filter changed");
    this.attempt = 0;
    if (this.pollTimer !== null) {
      // Polling: the next page starts at the head with the new filter, then resyncs.
      this._stopPolling();
      this._startPolling();
    } else {
      this._setState("reconnecting");
    }
    this._connect();
    return true;
  }

  /** The filter to ask for: none after the server refused it. */
  _query() {
    return (this.filterRejected ? "" : filterQuery(this.filter)) + "&batch=1";
  }

  _rejected(reason) {
    if (this.filterRejected) return;
    this.filterRejected = true;
    try {
      this.onFilterRejected(reason);
    } catch (e) {
      console.error("filter rejection handler failed", e);
    }
  }

  _ready() {
    if (this._firstReady) {
      const r = this._firstReady;
      this._firstReady = null;
      r();
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateCb(state);
  }

  _connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // The session cookie signs the socket in; no token travels in the URL.
    let query = this._query();
    if (this.lastSeq !== null) query = `&since=${this.lastSeq}` + query;
    const url = `${proto}//${location.host}/ws/events?${query.slice(1)}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this._failed(null);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.lastUrl = url;
    const openedAt = Date.now();
    let helloSeen = false;
    ws.onmessage = (msg) => {
      if (this.ws !== ws) return; // replaced (a new filter): its frames are not ours
      let ev;
      try {
        ev =
          typeof msg.data === "string"
            ? JSON.parse(msg.data)
            : JSON.parse(new TextDecoder().decode(msg.data));
      } catch {
        return;
      }
      if (ev.type === "hello") {
        helloSeen = true;
        this.serverFilter = ev.filter ?? null;
        this.failures = 0;
        this.attempt = 0;
        this._stopPolling();
        const fresh = this.lastSeq === null;
        if (fresh) this._setSeq(ev.last_seq ?? 0);
        this._setState("live");
        if (fresh && !this._firstReady) this.onResync();
        this._ready();
        return;
      }
      if (ev.type === "positions") {
        // No seq: a snapshot of who moved, newer than anything the seq'd events hold.
        try {
          this.onPositions(ev.units || []);
        } catch (e) {
          console.error("positions handler failed", e);
        }
        return;
      }
      if (ev.type === "batch") {
        // Several events in one frame, in seq order: each handled as if it came alone.
        for (const one of ev.events || []) this._handle(one);
        return;
      }
      this._handle(ev);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4401) {
        // An ended session goes back to sign in; an expired access token is refreshed
        // and the socket reopened from where it was.
        if ((ev.reason || "").startsWith("session ended")) {
          sessionEnded(ev.reason);
          return;
        }
        refreshSession(openedAt).then((ok) => {
          if (ok) this._reconnectNow();
          else sessionEnded(ev.reason);
        });
        return;
      }
      if (ev.code === 4422) {
        // A filter value the server does not accept (the reason names the field): carry
        // on unfiltered from where we were rather than retry what will fail again.
        this._rejected(ev.reason || "bad filter");
        this._reconnectNow();
        return;
      }
      if (ev.code === 4408 && helloSeen) {
        // Dropped for being slow: resume at once from our own last seq.
        this._reconnectNow();
        return;
      }
      this._failed(helloSeen);
    };
  }

  _failed(helloSeen) {
    if (this.stopped) return;
    if (!helloSeen) this.failures += 1;
    if (this.pollTimer !== null || this.state === "polling") {
      this.retryTimer = setTimeout(() => this._connect(), WS_RETRY_WHILE_POLLING_MS);
      return;
    }
    if (this.failures >= FAILURES_BEFORE_POLLING) {
      this._startPolling();
      this.retryTimer = setTimeout(() => this._connect(), WS_RETRY_WHILE_POLLING_MS);
      return;
    }
    this._setState(navigator.onLine === false ? "offline" : "reconnecting");
    const delay = Math.min(10000, 300 * 2 ** this.attempt) + Math.random() * 250;
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  _reconnectNow() {
    clearTimeout(this.retryTimer);
    if (this.ws) return;
    this._setState("reconnecting");
    this._connect();
  }

  _setSeq(seq) {
    this.lastSeq = seq;
    sessionStorage.setItem(this.storeKey, String(seq));
  }

  _handle(ev) {
    if (typeof ev.seq !== "number") return;
    if (this.lastSeq !== null && ev.seq <= this.lastSeq) return; // already seen
    this._setSeq(ev.seq);
    this.received += 1;
    try {
      this.onEvent(ev);
    } catch (e) {
      console.error("event handler failed", e);
    }
  }

  _startPolling() {
    this._setState("polling");
    const gen = (this.pollGen = (this.pollGen || 0) + 1);
    // A tick still awaiting when polling restarts (a new filter) ends there, unheard.
    const current = () => !this.stopped && this.pollTimer !== null && this.pollGen === gen;
    const tick = async () => {
      if (!current()) return;
      let behind = false;
      try {
        if (!this.pollEvents) {
          await this.onResync();
        } else {
          const since = this.lastSeq === null ? HEAD : String(this.lastSeq);
          // api() refreshes an expired token, and signs out an ended session.
          const filter = this.filterRejected ? "" : filterQuery(this.filter);
          let body;
          try {
            body = await api("GET", `/api/events?since=${since}&limit=500${filter}`);
          } catch (err) {
            if (!(filter && err && err.status === 422)) throw err;
            this._rejected(err.message || "bad filter");
            body = await api("GET", `/api/events?since=${since}&limit=500`);
          }
          if (!current()) return;
          if (this.lastSeq === null) {
            this._setSeq(body.last_seq);
            if (!this._firstReady) this.onResync();
          }
          for (const ev of body.events) this._handle(ev);
          // A page covers a seq range: with a filter (or events this role may not read)
          // it can hold nothing, and the next page must still start after it.
          const end = body.next_since;
          if (typeof end === "number" && this.lastSeq !== null && end > this.lastSeq) {
            this._setSeq(end);
          }
          behind = typeof end === "number" && typeof body.last_seq === "number" && end < body.last_seq;
        }
        if (this.pollTimer !== null) this._setState("polling");
        this._ready();
      } catch {
        if (!current()) return;
        this._setState("offline");
      }
      if (current()) this.pollTimer = setTimeout(tick, behind ? 0 : POLL_MS);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  _stopPolling() {
    this.pollGen = (this.pollGen || 0) + 1;
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}
