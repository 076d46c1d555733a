// The live event stream: WebSocket with resume-from-seq, backoff, de-duplication and a
// polling fallback. Each console sees every event exactly once, in seq order, whatever
// happens to the socket.
import { api, refreshSession, session, sessionEnded } from "./api.js";

const HEAD = "4611686018427387903"; // 2**62 - 1: "nothing after this" yields just last_seq
const POLL_MS = 2000;
const WS_RETRY_WHILE_POLLING_MS = 15000;
const FAILURES_BEFORE_POLLING = 3;

export class EventStream {
  /**
   * onEvent(ev) for each new event; onState(state) with live | reconnecting | polling |
   * offline | connecting; onResync() when the page should reload its snapshot because
   * events cannot be replayed (a unit's polling, or a first connection without a seq).
   * pollEvents=false for roles that may not read /api/events (units): polling then
   * means calling onResync. onPositions(units) receives the socket's unsequenced
   * position batches ([{id, lat, lng, at}], only units that moved); they are not
   * replayed after a gap, so a console keeps positions from its snapshot until then.
   */
  constructor({
    onEvent,
    onState = () => {},
    onResync = () => {},
    onPositions = () => {},
    pollEvents = true,
  }) {
    this.onEvent = onEvent;
    this.onPositions = onPositions;
    this.onStateCb = onState;
    this.onResync = onResync;
    this.pollEvents = pollEvents;
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
    let url = `${proto}//${location.host}/ws/events`;
    if (this.lastSeq !== null) url += `?since=${this.lastSeq}`;
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
    const tick = async () => {
      if (this.stopped || this.pollTimer === null) return;
      try {
        if (!this.pollEvents) {
          await this.onResync();
        } else {
          const since = this.lastSeq === null ? HEAD : String(this.lastSeq);
          // api() refreshes an expired token, and signs out an ended session.
          const body = await api("GET", `/api/events?since=${since}&limit=500`);
          if (this.lastSeq === null) {
            this._setSeq(body.last_seq);
            if (!this._firstReady) this.onResync();
          }
          for (const ev of body.events) this._handle(ev);
        }
        if (this.pollTimer !== null) this._setState("polling");
        this._ready();
      } catch {
        this._setState("offline");
      }
      if (this.pollTimer !== null) this.pollTimer = setTimeout(tick, POLL_MS);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  _stopPolling() {
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}
