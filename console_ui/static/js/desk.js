// The dispatcher's desk: the boroughs the signed-in user works from this workstation,
// remembered per user on this device (localStorage). A compact button in the top bar
// ("Desk: Lambeth, Southwark") opens the list: type to find a borough and Enter ticks the
// first match; arrows move and Space ticks; Enter on an empty search (or Apply) takes the
// choice; Esc leaves it as it was. No borough ticked is "All London".
import { esc } from "./common.js";

const SHOWN_NAMES = 3; // names in the button before "+N"

function loadSaved(key) {
  try {
    const saved = JSON.parse(localStorage.getItem(key) || "null");
    if (saved && Array.isArray(saved.areas)) {
      const codes = saved.areas.filter((c) => typeof c === "string" && c);
      return {
        codes: codes.length ? [...new Set(codes)].sort() : null,
        names: saved.names && typeof saved.names === "object" ? saved.names : {},
      };
    }
  } catch {
    /* a broken saved desk is All London */
  }
  return { codes: null, names: {} };
}

export class DeskPicker {
  /** onChange(codes | null) after the user (or a pruned saved choice) changes the desk. */
  constructor(username, { onChange = () => {} } = {}) {
    this.key = `cad.dispatcher.desk.${username}`;
    this.onChange = onChange;
    this.boroughs = []; // [{code, name}] by name, once the areas load
    const saved = loadSaved(this.key);
    this.codes = saved.codes; // sorted array, or null for All London
    this.names = new Map(Object.entries(saved.names).map(([c, n]) => [c, String(n)]));
    this.draft = new Set();
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.id = "desk";
    this.button.className = "desk-button";
    this.button.setAttribute("aria-haspopup", "dialog");
    this.button.setAttribute("aria-expanded", "false");
    this.button.setAttribute("aria-controls", "desk-pop");
    this.button.addEventListener("click", () => (this.isOpen() ? this.cancel() : this.open()));
    this.pop = this._buildPopover();
    document.body.append(this.pop);
    this._label();
  }

  /** The desk's borough codes, or null for All London. */
  get areas() {
    return this.codes ? [...this.codes] : null;
  }

  has(code) {
    return this.codes === null || this.codes.includes(code);
  }

  nameOf(code) {
    return this.names.get(code) || code;
  }

  /** The boroughs to choose from ({code, name}); a saved code no longer listed is dropped. */
  setBoroughs(list) {
    this.boroughs = [...list].sort((a, b) => a.name.localeCompare(b.name));
    for (const b of this.boroughs) this.names.set(b.code, b.name);
    this._renderList();
    if (this.codes && this.boroughs.length) {
      const known = new Set(this.boroughs.map((b) => b.code));
      const kept = this.codes.filter((c) => known.has(c));
      if (kept.length !== this.codes.length) {
        this._commit(kept);
        return;
      }
    }
    this._save();
    this._label();
  }

  /** Choose a desk as if the user had (codes: borough codes; empty or null: All London). */
  choose(codes) {
    this._commit(codes || []);
  }

  isOpen() {
    return !this.pop.hidden;
  }

  open() {
    this.draft = new Set(this.codes || []);
    this.q.value = "";
    this._renderList();
    const r = this.button.getBoundingClientRect();
    this.pop.hidden = false;
    const w = this.pop.offsetWidth;
    this.pop.style.top = `${Math.round(r.bottom + 4)}px`;
    this.pop.style.left = `${Math.round(Math.max(4, Math.min(r.left, innerWidth - w - 4)))}px`;
    this.button.setAttribute("aria-expanded", "true");
    this.q.focus();
  }

  cancel() {
    this._close();
  }

  apply() {
    this._close();
    this._commit([...this.draft]);
  }

  _close() {
    if (this.pop.hidden) return;
    const inside = this.pop.contains(document.activeElement);
    this.pop.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    if (inside) this.button.focus();
  }

  _commit(codes) {
    const next = codes.length ? [...new Set(codes)].sort() : null;
    const same = (next || []).join(",") === (this.codes || []).join(",");
    this.codes = next;
    this._save();
    this._label();
    if (!same) this.onChange(this.areas);
  }

  _save() {
    const names = {};
    for (const c of this.codes || []) names[c] = this.nameOf(c);
    localStorage.setItem(this.key, JSON.stringify({ areas: this.codes || [], names }));
  }

  _label() {
    const b = this.button;
    b.dataset.areas = (this.codes || []).join(",");
    if (!this.codes) {
      b.innerHTML = `<span class="desk-k">Desk:</span> <span class="desk-v">All London</span> <span class="desk-caret" aria-hidden="true">▾</span>`;
      b.title = "Desk: every borough. Click to choose boroughs.";
      return;
    }
    const names = this.codes.map((c) => this.nameOf(c)).sort((x, y) => x.localeCompare(y));
    const shown = names.slice(0, SHOWN_NAMES).join(", ");
    const more = names.length > SHOWN_NAMES ? ` +${names.length - SHOWN_NAMES}` : "";
    b.innerHTML = `<span class="desk-k">Desk:</span> <span class="desk-v">${esc(shown)}</span>${
      more ? `<span class="desk-more">${esc(more)}</span>` : ""
    } <span class="desk-caret" aria-hidden="true">▾</span>`;
    b.title = `Desk: ${names.join(", ")}. Click to change.`;
  }

  _buildPopover() {
    const pop = document.createElement("div");
    pop.id = "desk-pop";
    pop.className = "desk-pop";
    pop.hidden = true;
    pop.setAttribute("role", "dialog");
    pop.setAttribute("aria-label", "Choose the desk's boroughs");
    pop.innerHTML = `
      <div class="desk-head">
        <input id="desk-q" type="search" autocomplete="off" spellcheck="false"
          placeholder="Find a borough…" aria-label="Find a borough" aria-controls="desk-list">
        <label class="desk-all"><input type="checkbox" id="desk-all"> All London</label>
      </div>
      <div id="desk-list" class="desk-list" role="group" aria-label="Boroughs"></div>
      <div class="desk-foot">
        <span class="hint"><kbd>Enter</kbd> ticks the first match · <kbd>Space</kbd> ticks · <kbd>Esc</kbd> cancels</span>
        <span class="spacer"></span>
        <span id="desk-picked" class="desk-picked"></span>
        <button type="button" id="desk-cancel">Cancel</button>
        <button type="button" id="desk-apply" class="primary">Apply</button>
      </div>`;
    this.q = pop.querySelector("#desk-q");
    this.all = pop.querySelector("#desk-all");
    this.list = pop.querySelector("#desk-list");
    this.picked = pop.querySelector("#desk-picked");
    this.q.addEventListener("input", () => this._filterList());
    this.all.addEventListener("change", () => {
      // All London is "no borough ticked": ticking it clears them, it cannot be unticked.
      this.draft.clear();
      this._syncChecks();
    });
    this.list.addEventListener("change", (e) => {
      const box = e.target.closest("input[type=checkbox]");
      if (!box) return;
      if (box.checked) this.draft.add(box.value);
      else this.draft.delete(box.value);
      this._syncChecks();
    });
    pop.querySelector("#desk-cancel").addEventListener("click", () => this.cancel());
    pop.querySelector("#desk-apply").addEventListener("click", () => this.apply());
    pop.addEventListener("keydown", (e) => this._key(e));
    document.addEventListener("pointerdown", (e) => {
      if (this.isOpen() && !pop.contains(e.target) && !this.button.contains(e.target)) this.cancel();
    });
    return pop;
  }

  _renderList() {
    if (!this.list) return;
    this.list.innerHTML = this.boroughs.length
      ? this.boroughs
          .map(
            (b) =>
              `<label data-code="${esc(b.code)}" data-name="${esc(b.name.toLowerCase())}"><input type="checkbox" value="${esc(b.code)}"> ${esc(b.name)}</label>`,
          )
          .join("")
      : `<div class="empty">Loading boroughs…</div>`;
    this._syncChecks();
    this._filterList();
  }

  _syncChecks() {
    for (const box of this.list.querySelectorAll("input[type=checkbox]")) {
      box.checked = this.draft.has(box.value);
    }
    this.all.checked = this.draft.size === 0;
    this.all.disabled = false;
    const n = this.draft.size;
    this.picked.textContent = n ? `${n} borough${n === 1 ? "" : "s"}` : "All London";
  }

  _filterList() {
    const q = this.q.value.trim().toLowerCase();
    for (const label of this.list.querySelectorAll("label[data-code]")) {
      label.hidden = Boolean(q) && !label.dataset.name.includes(q);
    }
  }

  /** The match Enter ticks: a name starting with the text, then a word of it, then any. */
  _bestMatch(q) {
    const shown = [...this.list.querySelectorAll("label[data-code]:not([hidden])")];
    const hit =
      shown.find((l) => l.dataset.name.startsWith(q)) ||
      shown.find((l) => l.dataset.name.includes(` ${q}`)) ||
      shown[0];
    return hit ? hit.querySelector("input") : null;
  }

  _boxes() {
    return [this.all, ...[...this.list.querySelectorAll("label[data-code]:not([hidden]) input")]];
  }

  _key(e) {
    const t = e.target;
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      if (this.q.value) {
        this.q.value = "";
        this._filterList();
        this.q.focus();
      } else {
        this.cancel();
      }
      return;
    }
    if (t === this.q) {
      if (e.key === "Enter") {
        e.preventDefault();
        if (!this.q.value.trim()) {
          this.apply();
          return;
        }
        const first = this._bestMatch(this.q.value.trim().toLowerCase());
        if (first) {
          first.checked = !first.checked;
          first.dispatchEvent(new Event("change", { bubbles: true }));
          this.q.value = "";
          this._filterList();
        }
      } else if (e.key === "ArrowDown") {
        e.preventDefault();
        const boxes = this._boxes();
        (boxes[1] || boxes[0]).focus();
      }
      return;
    }
    if (!(t instanceof HTMLInputElement) || t.type !== "checkbox") return;
    if (e.key === "Enter") {
      e.preventDefault();
      this.apply();
      return;
    }
    const boxes = this._boxes();
    const k = boxes.indexOf(t);
    const perColumn = Math.max(1, Math.ceil((boxes.length - 1) / 3));
    const step = { ArrowDown: 1, ArrowUp: -1, ArrowRight: perColumn, ArrowLeft: -perColumn }[e.key];
    if (step) {
      e.preventDefault();
      if (k <= 0 && step < 0) {
        this.q.focus();
        return;
      }
      const next = Math.max(0, Math.min(boxes.length - 1, k + step));
      boxes[next].focus();
      return;
    }
    if (e.key.length === 1 && e.key !== " " && !e.ctrlKey && !e.altKey && !e.metaKey) {
      this.q.focus(); // typing goes on in the search box
    }
  }
}
