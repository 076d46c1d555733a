// The unit app's outbox: every press (status, acknowledgement, remark, emergency) and every
// position report is written to IndexedDB first and sent from there, one at a time, in
// the order pressed, so nothing pressed is lost to a dead spot, a 503 or a closed tab.
//
// Each item keeps the Idempotency-Key made when it was pressed: a resend after a lost
// answer is the same request, and the server applies it once. An item the server refuses
// (409, 422, …) leaves the queue and is reported with the server's reason; a network
// error or a 5xx leaves it where it is, to be sent again when the signal returns.
// Urgent items (the emergency) go before everything older.
import { ApiError, api } from "./api.js";

const DB_NAME = "cad-unit";
const STORE = "outbox";
const MAX_POSITIONS = 100; // reports kept in the one queued position batch (newest win)
const RETRY_MAX_MS = 30000;

/** A fresh idempotency key (crypto.randomUUID needs a secure context: 127.0.0.1 is one). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function promised(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb() {
  if (!("indexedDB" in window)) return Promise.resolve(null);
  return new Promise((resolve) => {
    let req;
    try {
      req = indexedDB.open(DB_NAME, 1);
    } catch {
      resolve(null);
      return;
    }
    req.onupgradeneeded = () => {
      req.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
    };
    req.onsuccess = () => resolve(req.result);
    // No IndexedDB (a locked-down profile): the queue still works, in memory only.
    req.onerror = () => resolve(null);
    req.onblocked = () => resolve(null);
  });
}

/** Whether an error means "not sent, try again" rather than "the server said no". */
export function isRetryable(err) {
  if (!(err instanceof ApiError)) return true;
  return err.status === 0 || err.status === 401 || err.status === 408 || err.status === 429 || err.status >= 500;
}

export class Outbox {
  /**
   * owner: the signed-in username (items of another user on this device are left alone).
   * onChange() after any change; onSent(item, response); onRefused(item, ApiError).
   */
  constructor({ owner, onChange = () => {}, onSent = () => {}, onRefused = () => {} }) {
    this.owner = owner;
    this.onChange = onChange;
    this.onSent = onSent;
    this.onRefused = onRefused;
    this.db = null;
    this.list = [];
    this.memSeq = 0;
    this.sendingSeq = null;
    this.flushing = null;
    this.again = false;
    this.failures = 0;
    this.retryTimer = null;
    this.retryAt = null;
    this.lastError = "";
    this.deleted = new Set(); // seqs taken off here: a reload in flight must not bring them back
    window.addEventListener("online", () => {
      this.failures = 0;
      this.flush();
    });
  }

  async open() {
    this.db = await openDb();
    await this._reload();
    this.onChange();
    return this;
  }

  /** The queue in the order it will be sent: urgent first, then as pressed. */
  items() {
    return [...this.list].sort((a, b) => (b.urgent ? 1 : 0) - (a.urgent ? 1 : 0) || a.seq - b.seq);
  }

  get size() {
    return this.list.length;
  }

  isSending(item) {
    return this.sendingSeq === item.seq;
  }

  /** Queue a request and start sending. Returns the stored item. */
  async add({ kind, method = "POST", path, body, label, urgent = false, idempotent = true, meta = {} }) {
    const item = {
      owner: this.owner,
      kind,
      method,
      path,
      body,
      label,
      urgent,
      key: idempotent ? newKey() : null,
      pressed_at: body && body.pressed_at ? body.pressed_at : new Date().toISOString(),
      queued_at: new Date().toISOString(),
      tries: 0,
      last_error: "",
      meta,
    };
    await this._put(item);
    // A reload running meanwhile may have read it already: one object per item.
    this.list = [...this.list.filter((i) => i.seq !== item.seq), item];
    this.onChange();
    this.flush();
    return item;
  }

  /** Position reports join the one batch still waiting (the server keeps the newest). */
  async addPositions(unitId, reports) {
    const waiting = this.list.find((i) => i.kind === "position" && !this.isSending(i));
    if (waiting) {
      waiting.body = [...waiting.body, ...reports].slice(-MAX_POSITIONS);
      waiting.label = `Position (${waiting.body.length} report${waiting.body.length === 1 ? "" : "s"})`;
      await this._put(waiting);
      this.onChange();
      this.flush();
      return waiting;
    }
    return this.add({
      kind: "position",
      path: "/api/units/positions",
      body: reports,
      label: `Position (${reports.length} report${reports.length === 1 ? "" : "s"})`,
      idempotent: false, // positions carry their own time: a repeat changes nothing
      meta: { unit_id: unitId },
    });
  }

  /** Change a waiting item's body, only while the server cannot have seen it (its key
   * would then stand for another request). Returns whether it changed. */
  async amend(item, body) {
    if (this.isSending(item) || item.tries > 0 || !this.list.includes(item)) return false;
    item.body = body;
    await this._put(item);
    this.onChange();
    return true;
  }

  /** Take items off the queue unsent (e.g. an emergency cancelled before it left). */
  async drop(pred) {
    const gone = this.list.filter((i) => pred(i) && !this.isSending(i));
    for (const i of gone) await this._delete(i);
    if (gone.length) this.onChange();
    return gone;
  }

  /** Send what is waiting, one at a time; a failure stops until the next try. */
  flush() {
    if (this.flushing) {
      this.again = true;
      return this.flushing;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    this.flushing = (async () => {
      let failed = false;
      try {
        await this._reload(); // another tab may have sent some meanwhile
        for (;;) {
          const item = this.items()[0];
          if (!item) break;
          if (navigator.onLine === false) {
            this.lastError = "no signal";
            failed = true;
            break;
          }
          this.sendingSeq = item.seq;
          item.tries += 1;
          await this._put(item);
          this.onChange();
          let res;
          try {
            const headers = item.key ? { "Idempotency-Key": item.key } : {};
            res = await api(item.method, item.path, item.body, { headers });
          } catch (err) {
            this.sendingSeq = null;
            if (isRetryable(err)) {
              item.last_error = err.message;
              this.lastError = err.status === 0 ? "no signal" : err.message;
              await this._put(item);
              failed = true;
              break;
            }
            await this._delete(item);
            this.onRefused(item, err);
            continue;
          }
          this.sendingSeq = null;
          this.failures = 0;
          this.lastError = "";
          await this._delete(item);
          this.onSent(item, res);
        }
      } finally {
        this.sendingSeq = null;
        this.flushing = null;
        if (failed) this._retryLater();
        this.onChange();
      }
      if (this.again) {
        this.again = false;
        if (!failed) this.flush();
      }
    })();
    return this.flushing;
  }

  _retryLater() {
    clearTimeout(this.retryTimer);
    const delay = Math.min(RETRY_MAX_MS, 1000 * 2 ** this.failures);
    this.failures += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.flush(), delay);
  }

  // ---- storage --------------------------------------------------------------------------
  async _reload() {
    if (!this.db) return;
    try {
      const tx = this.db.transaction(STORE, "readonly");
      const all = await promised(tx.objectStore(STORE).getAll());
      const mine = all.filter((i) => i.owner === this.owner && !this.deleted.has(i.seq));
      // Keep the objects already held (callers hold references to them).
      const held = new Map(this.list.map((i) => [i.seq, i]));
      this.list = mine.map((i) => (held.has(i.seq) ? Object.assign(held.get(i.seq), i) : i));
    } catch {
      // A failed read leaves the queue as this tab knows it.
    }
  }

  async _put(item) {
    if (!this.db) {
      if (item.seq === undefined) item.seq = ++this.memSeq;
      return;
    }
    try {
      const tx = this.db.transaction(STORE, "readwrite");
      const copy = { ...item };
      if (copy.seq === undefined) delete copy.seq;
      const seq = await promised(tx.objectStore(STORE).put(copy));
      item.seq = seq;
    } catch {
      if (item.seq === undefined) item.seq = 1e12 + ++this.memSeq;
    }
  }

  async _delete(item) {
    this.list = this.list.filter((i) => i !== item);
    this.deleted.add(item.seq);
    if (!this.db) return;
    try {
      const tx = this.db.transaction(STORE, "readwrite");
      await promised(tx.objectStore(STORE).delete(item.seq));
    } catch {
      // Left in storage, it would be sent again next load: the key makes that harmless.
    }
  }
}
