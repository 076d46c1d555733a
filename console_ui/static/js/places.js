// Place type-ahead over /api/places: postcodes, stations, landmarks, wards, boroughs.
// One component for the handler's location field and the maps' "go to" box.
import { get } from "./api.js";
import { esc } from "./common.js";

const WAIT_MS = 120; // quiet time before asking
const MAX_WAIT_MS = 400; // a steady typist still sees answers this often

let instances = 0;

/** "Bishop's · Lambeth" for a hit (ward, then borough; the hit's own name is not repeated). */
export function placeContext(hit) {
  const parts = [];
  for (const p of [hit.ward && hit.ward.name, hit.area && hit.area.name]) {
    if (p && p !== hit.label && !parts.includes(p)) parts.push(p);
  }
  return parts.join(" · ");
}

/** "SE1 7PB · Bishop's · Lambeth": what the consoles show for a picked place. */
export function placeLine(hit) {
  const ctx = placeContext(hit);
  return ctx ? `${hit.label} · ${ctx}` : hit.label;
}

const KIND_NAMES = {
  postcode: "postcode",
  place: "place",
  station: "station",
  borough: "borough",
  ward: "ward",
};

/**
 * Turn `input` into a place type-ahead. onPick(hit, {via}) runs when a hit is chosen
 * (via: "keyboard" | "tab" | "mouse" | "first" | "suggestion"); onEdit(text) when the text changes after a pick;
 * onError(err) when a search fails. Returns {clear(), close(), pickFirst(), picked}.
 */
export function attachPlaceSearch(input, { onPick, onEdit, onError, limit = 8, minChars = 2 } = {}) {
  const id = `places-${++instances}`;
  const wrap = document.createElement("div");
  wrap.className = "places";
  input.parentNode.insertBefore(wrap, input);
  wrap.appendChild(input);
  const list = document.createElement("ul");
  list.className = "places-list";
  list.id = `${id}-list`;
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Matching places");
  list.hidden = true;
  wrap.appendChild(list);
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", list.id);
  input.setAttribute("autocomplete", "off");
  input.setAttribute("spellcheck", "false");

  let hits = [];
  let active = -1;
  let seq = 0; // every request takes a number; an answer older than the shown one is dropped
  let shownSeq = 0;
  let shownFor = null; // the query text the shown hits answer
  let pending = null; // {text, promise} of the newest request
  let picked = null;
  let timer = null;
  let firstWait = 0; // when the current burst of typing began waiting

  function setOpen(open) {
    list.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    wrap.classList.toggle("open", open);
    if (!open) input.removeAttribute("aria-activedescendant");
  }

  function render(message = null) {
    if (message) {
      list.innerHTML = `<li class="places-msg" role="option" aria-disabled="true">${esc(message)}</li>`;
    } else {
      list.innerHTML = hits
        .map((h, i) => {
          const ctx = placeContext(h);
          return `<li role="option" id="${id}-${i}" data-index="${i}" data-label="${esc(h.label)}"
              aria-selected="${i === active}" class="${i === active ? "active" : ""}">
            <span class="places-label">${esc(h.label)}</span>
            <span class="places-kind kind-${esc(h.kind)}">${esc(KIND_NAMES[h.kind] || h.kind)}</span>
            ${ctx ? `<span class="places-ctx">${esc(ctx)}</span>` : ""}
          </li>`;
        })
        .join("");
    }
    if (active >= 0) {
      input.setAttribute("aria-activedescendant", `${id}-${active}`);
      const el = list.children[active];
      if (el) el.scrollIntoView({ block: "nearest" });
    } else input.removeAttribute("aria-activedescendant");
    setOpen(document.activeElement === input && (hits.length > 0 || message !== null));
  }

  function search(text) {
    const mine = ++seq;
    const q = text.trim();
    const promise = get(`/api/places?q=${encodeURIComponent(q)}&limit=${limit}`).then(
      (answer) => {
        if (mine < shownSeq) return hits; // an older answer arriving late
        shownSeq = mine;
        shownFor = q;
        hits = Array.isArray(answer) ? answer : [];
        active = -1;
        if (input.value.trim() === q) render(hits.length ? null : `No place matches "${q}"`);
        return hits;
      },
      (err) => {
        if (mine >= shownSeq && input.value.trim() === q) {
          hits = [];
          active = -1;
          render(`Place search failed: ${err.message}`);
        }
        if (onError) onError(err);
        return [];
      },
    );
    pending = { text: q, promise };
    return promise;
  }

  function schedule() {
    const now = Date.now();
    if (timer === null) firstWait = now;
    clearTimeout(timer);
    // Debounced, but never past MAX_WAIT_MS from the first keystroke of a burst.
    const wait = Math.max(0, Math.min(WAIT_MS, firstWait + MAX_WAIT_MS - now));
    timer = setTimeout(() => {
      timer = null;
      const text = input.value.trim();
      if (text.length >= minChars) search(text);
    }, wait);
  }

  function cancelScheduled() {
    clearTimeout(timer);
    timer = null;
  }

  function pick(index, via) {
    const hit = hits[index];
    if (!hit) return;
    picked = hit;
    input.value = hit.label;
    hits = [];
    active = -1;
    shownFor = null;
    cancelScheduled();
    ++seq; // whatever is in flight answers a question nobody asks any more
    shownSeq = seq;
    list.innerHTML = "";
    setOpen(false);
    if (onPick) onPick(hit, { via });
  }

  /** The first hit for the current text, asking now if the shown hits are not for it. */
  async function pickFirst(via = "first") {
    const text = input.value.trim();
    if (text.length < minChars) return null;
    cancelScheduled();
    if (picked && picked.label === input.value) {
      hits = [picked];
      pick(0, via);
      return picked;
    }
    let answer = hits;
    if (shownFor !== text) {
      answer = pending && pending.text === text ? await pending.promise : await search(text);
    }
    if (input.value.trim() !== text) return null; // the text changed while we waited
    if (!answer.length) return null;
    hits = answer;
    pick(0, via);
    return picked;
  }

  input.addEventListener("input", () => {
    const text = input.value.trim();
    if (picked && input.value !== picked.label) picked = null;
    if (onEdit) onEdit(input.value);
    if (text.length < minChars) {
      cancelScheduled();
      ++seq;
      shownSeq = seq;
      hits = [];
      active = -1;
      shownFor = null;
      list.innerHTML = "";
      setOpen(false);
      return;
    }
    schedule();
  });

  input.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return; // the page's shortcuts (Ctrl+Enter submit)
    const open = !list.hidden && hits.length > 0;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!hits.length) {
        if (e.key === "ArrowDown" && input.value.trim().length >= minChars) {
          e.preventDefault();
          cancelScheduled();
          search(input.value);
        }
        return;
      }
      e.preventDefault();
      if (!open) active = e.key === "ArrowDown" ? 0 : hits.length - 1;
      else if (e.key === "ArrowDown") active = (active + 1) % hits.length;
      else active = active <= 0 ? hits.length - 1 : active - 1;
      render();
    } else if (e.key === "Enter") {
      // Never submits the form: Enter here means "this place".
      e.preventDefault();
      if (open && active >= 0) pick(active, "keyboard");
      else pickFirst("keyboard");
    } else if (e.key === "Escape") {
      if (!list.hidden) {
        // Only closes the list; the page's Escape (reset) is for a closed list.
        e.preventDefault();
        e.stopPropagation();
        setOpen(false);
      }
    } else if (e.key === "Tab" && open && active >= 0) {
      pick(active, "tab"); // Tab itself then moves on
    }
  });

  // mousedown keeps the focus in the input, so the list is not closed by the blur.
  list.addEventListener("mousedown", (e) => e.preventDefault());
  list.addEventListener("click", (e) => {
    const li = e.target.closest("li[data-index]");
    if (li) pick(Number(li.dataset.index), "mouse");
  });
  input.addEventListener("blur", () => setOpen(false));
  input.addEventListener("focus", () => {
    if (hits.length && shownFor === input.value.trim() && !picked) render();
  });

  return {
    get picked() {
      return picked;
    },
    /** Empty the field and forget the pick. */
    clear() {
      cancelScheduled();
      ++seq;
      shownSeq = seq;
      picked = null;
      hits = [];
      active = -1;
      shownFor = null;
      input.value = "";
      list.innerHTML = "";
      setOpen(false);
    },
    close() {
      setOpen(false);
    },
    /** Set the text as if picked (e.g. a suggestion from an error) and report the pick. */
    pickHit(hit, via = "suggestion") {
      hits = [hit];
      pick(0, via);
    },
    pickFirst,
  };
}
