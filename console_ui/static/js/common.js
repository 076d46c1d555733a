// Page furniture shared by the consoles: top bar, connection state, toast, formatting.
import { ApiError, signOut } from "./api.js";

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function esc(v) {
  return String(v ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

const STAFF = new Set(["call_handler", "dispatcher", "supervisor", "admin"]);
// One search tab for the whole desk: a live console stays where it is; the search page
// opens (or is reused) beside it. A named window keeps its opener, so it shares the session.
export const SEARCH_TAB = "cad-search";

/** Open the search page in the search tab (this tab if the browser refuses a new one). */
export function openSearch(url) {
  const w = window.open(url, SEARCH_TAB);
  if (w) w.focus();
  else location.assign(url);
}

// The consoles a supervisor or an administrator may open besides their own: each page's
// requireSession admits these roles, so a link never leads to a refusal.
const NAV = [
  { href: "/console/handler/", label: "Calls", roles: ["supervisor", "admin"] },
  { href: "/console/dispatcher/", label: "Dispatch", roles: ["supervisor", "admin"] },
  { href: "/console/supervisor/", label: "KPIs", roles: ["supervisor", "admin"] },
  { href: "/console/supervisor/access.html", label: "Access log", roles: ["supervisor", "admin"] },
  { href: "/console/admin/", label: "Users", roles: ["admin"] },
];

function navHtml(role) {
  const here = location.pathname.replace(/index\.html$/, "");
  const links = NAV.filter((n) => n.roles.includes(role)).map(
    (n) =>
      `<a class="nav-link" href="${esc(n.href)}"${n.href === here ? ' aria-current="page"' : ""}>${esc(n.label)}</a>`,
  );
  return links.length ? `<nav class="topnav" aria-label="Consoles">${links.join("")}</nav>` : "";
}

/**
 * Fill the top bar: title, who is signed in, connection state, sign out. Staff get a link
 * to the search page; `{searchBox: true}` adds a query box that opens it (Enter).
 * Supervisors and administrators also get links to the other consoles they may use.
 */
export function topbar(title, s, { searchBox = false, current = "" } = {}) {
  const bar = $(".topbar");
  const staff = STAFF.has(s.role);
  bar.innerHTML = `
    <h1>${esc(title)}</h1>
    ${
      staff && searchBox
        ? `<form id="topbar-search" class="topbar-search" role="search" autocomplete="off">
            <input id="topbar-q" type="search" maxlength="300" aria-label="Search incidents"
              placeholder="Search: ref, words, phone, postcode…"></form>`
        : ""
    }
    <span class="spacer"></span>
    ${navHtml(s.role)}
    ${
      staff && current !== "search"
        ? `<a id="nav-search" class="nav-link" href="/console/search/" target="${SEARCH_TAB}">Search</a>`
        : ""
    }
    <span id="conn" class="conn" data-state="connecting" role="status" aria-live="polite"
      title="Live event stream">connecting</span>
    <span class="who">${esc(s.username)} · ${esc(s.role)}</span>
    <button id="signout" type="button">Sign out</button>`;
  $("#signout").addEventListener("click", signOut);
  const form = $("#topbar-search");
  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = $("#topbar-q").value.trim();
      openSearch(q ? `/console/search/?q=${encodeURIComponent(q)}` : "/console/search/");
    });
  }
  const link = $("#nav-search");
  if (link) {
    link.addEventListener("click", (e) => {
      e.preventDefault();
      openSearch(link.getAttribute("href"));
    });
  }
}

export function showConnState(state) {
  const el = $("#conn");
  if (!el) return;
  el.dataset.state = state;
  el.textContent = state;
}

let toastTimer;
export function toast(message, kind = "ok", errors = []) {
  const el = $("#toast");
  if (!el) return;
  el.className = `show ${kind}`;
  el.innerHTML =
    esc(message) +
    (errors.length
      ? `<ul>${errors.map((e) => `<li>${esc(e.field)}: ${esc(e.reason)}</li>`).join("")}</ul>`
      : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.className = ""), kind === "error" ? 9000 : 4000);
}

export function showError(err) {
  if (err instanceof ApiError) toast(err.message, "error", err.errors);
  else toast(String(err && err.message ? err.message : err), "error");
}

export function fmtDuration(seconds) {
  const neg = seconds < 0;
  let s = Math.abs(Math.round(seconds));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const body = h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}:${String(s).padStart(2, "0")}`;
  return (neg ? "-" : "") + body;
}

export function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function ageText(iso) {
  return fmtDuration((Date.now() - new Date(iso).getTime()) / 1000);
}

/** Countdown to a target: amber under 5 minutes, red once breached. */
export function countdownHtml(targetIso) {
  if (!targetIso) return `<span class="countdown">—</span>`;
  const left = (new Date(targetIso).getTime() - Date.now()) / 1000;
  const cls = left < 0 ? "red" : left < 300 ? "amber" : "";
  return `<span class="countdown ${cls}" data-target="${esc(targetIso)}">${fmtDuration(left)}</span>`;
}

/** Bring every countdown on the page up to now. */
export function refreshCountdowns() {
  for (const el of $$(".countdown[data-target]")) {
    const left = (new Date(el.dataset.target).getTime() - Date.now()) / 1000;
    el.textContent = fmtDuration(left);
    el.classList.toggle("red", left < 0);
    el.classList.toggle("amber", left >= 0 && left < 300);
  }
}

/** Re-render every countdown on the page once a second. */
export function tickCountdowns() {
  setInterval(refreshCountdowns, 1000);
}

export function gradeBadge(g) {
  return g ? `<span class="grade grade-${esc(g)}" title="grade ${esc(g)}">${esc(g)}</span>` : "";
}

export function statusChip(st) {
  return `<span class="chip st-${esc(st)}">${esc(String(st).replace("_", " "))}</span>`;
}

/** The grade scheme from /api/grades, the one place the consoles learn which grades exist
 * and in what order of priority: `codes` most urgent first, `rank[code]` to sort by. */
export async function loadGrades(get) {
  const list = [...(await get("/api/grades"))].sort((a, b) => a.priority - b.priority);
  return {
    list,
    codes: list.map((g) => g.code),
    rank: Object.fromEntries(list.map((g) => [g.code, g.priority])),
  };
}

/** Run fn once, `ms` after the calls stop (trailing). A steady stream of calls postpones
 * it for ever: never use it for anything a live feed drives (see throttle, perFrame). */
export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Run fn at once, then at most once per `ms` while calls keep coming: leading edge plus
 * one trailing run, so the wait is bounded and a steady stream cannot starve it. An async
 * fn never overlaps itself; calls made while it runs fold into the one trailing run.
 * `ms` may be a function, asked each time (a gap that grows with the cost of fn).
 */
export function throttle(fn, ms) {
  let last = -Infinity;
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    running = true;
    last = Date.now();
    try {
      await fn();
    } catch (e) {
      console.error(e);
    } finally {
      running = false;
      if (again) {
        again = false;
        call();
      }
    }
  };
  function call() {
    if (running) {
      again = true;
      return;
    }
    if (timer !== null) return;
    const wait = last + (typeof ms === "function" ? ms() : ms) - Date.now();
    if (wait <= 0) run();
    else timer = setTimeout(run, wait);
  }
  return call;
}

/**
 * Coalesce calls into one run of fn per animation frame, and at most one per `minGapMs`
 * (a board under a stream of events draws a few times a second, not sixty). Hidden tabs
 * get no frames, so a timer runs it within `maxWaitMs` anyway. The wait is bounded by
 * minGapMs + maxWaitMs: work is batched, never postponed for ever as a debounce would.
 */
export function perFrame(fn, maxWaitMs = 100, minGapMs = 0) {
  let raf = null;
  let timer = null;
  let gap = null;
  let last = -Infinity;
  const run = () => {
    if (raf !== null) cancelAnimationFrame(raf);
    clearTimeout(timer);
    raf = null;
    timer = null;
    last = performance.now();
    fn();
  };
  const arm = () => {
    gap = null;
    raf = requestAnimationFrame(run);
    timer = setTimeout(run, maxWaitMs);
  };
  return () => {
    if (raf !== null || timer !== null || gap !== null) return;
    const wait = last + minGapMs - performance.now();
    if (wait > 0) gap = setTimeout(arm, wait);
    else arm();
  };
}
