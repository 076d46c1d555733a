// Fetch wrapper. The console holds no token a script can read: the session is in
// HttpOnly cookies set at sign-in, and every request that changes something echoes the
// readable cad_csrf cookie in X-CSRF-Token. An expired access token is refreshed
// silently (once, for all this browser's tabs); a session that has ended (signed out,
// account disabled or changed) sends the user back to sign in.

const KEY = "cad.session";
const REFRESHED_AT = "cad.refreshedAt";

/** Who is signed in on this tab: {role, username, unit_id}. No token is kept here. */
export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function saveSession(s) {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)cad_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

/** Back to sign in, saying why. */
export function sessionEnded(reason) {
  sessionStorage.removeItem(KEY);
  const q = new URLSearchParams({ expired: "1", next: location.pathname });
  if (reason) q.set("reason", String(reason).slice(0, 120));
  location.replace("/console/?" + q.toString());
}

export async function signOut() {
  try {
    await fetch("/api/auth/signout", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    });
  } catch {
    // Offline: the cookies still go; the session ends at its own time.
  }
  sessionStorage.removeItem(KEY);
  location.assign("/console/");
}

/** This tab's refresh in flight, shared by every request waiting on it. */
let refreshing = null;

/**
 * A new access token from the refresh cookie. A refresh token is spent when used, and
 * two tabs spending it at once would look like a stolen copy (which ends the session),
 * so tabs take turns (Web Locks) and one that waited finds the others' refresh done.
 * Resolves true when the caller should retry its request.
 */
export function refreshSession(failedAt = Date.now()) {
  if (refreshing) return refreshing;
  const run = async () => {
    const done = Number(localStorage.getItem(REFRESHED_AT) || 0);
    if (done > failedAt) return true; // another tab refreshed after our request failed
    const res = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    });
    if (!res.ok) return false;
    localStorage.setItem(REFRESHED_AT, String(Date.now()));
    return true;
  };
  const locked = navigator.locks ? navigator.locks.request("cad-refresh", run) : run();
  refreshing = locked
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** The page's session; without one (or for another role) go to sign in and never resolve. */
export function requireSession(roles) {
  const s = session();
  if (!s || !s.role || (roles && !roles.includes(s.role))) {
    location.replace("/console/?next=" + encodeURIComponent(location.pathname));
    return new Promise(() => {});
  }
  return Promise.resolve(s);
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.detail) || `HTTP ${status}`;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body || {};
    this.errors = (body && body.errors) || [];
  }
}

async function send(method, path, body, opts) {
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (body instanceof URLSearchParams) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, { detail: `network error: ${e.message}` });
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 300) };
    }
  }
  return { res, data };
}

export async function api(method, path, body, opts = {}) {
  const sentAt = Date.now();
  let { res, data } = await send(method, path, body, opts);
  if (res.status === 401 && !opts.noRedirect) {
    const ended = data && data.reason === "session_ended";
    if (!ended && (await refreshSession(sentAt))) {
      ({ res, data } = await send(method, path, body, opts));
    }
    if (res.status === 401) {
      sessionEnded(data && data.detail);
      throw new ApiError(401, data);
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body, opts) => api("POST", path, body, opts);
export const patch = (path, body, opts) => api("PATCH", path, body, opts);
