// Fetch wrapper: bearer token from the session, errors as ApiError with the server's
// {detail, errors}; a 401 sends the user back to sign in.

const KEY = "cad.session";

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

export function signOut() {
  sessionStorage.removeItem(KEY);
  location.assign("/console/");
}

/** The page's session; without one (or for another role) go to sign in and never resolve. */
export function requireSession(roles) {
  const s = session();
  if (!s || !s.token || (roles && !roles.includes(s.role))) {
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

export async function api(method, path, body, opts = {}) {
  const s = session();
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  if (s && s.token) headers.Authorization = `Bearer ${s.token}`;
  let payload;
  if (body instanceof URLSearchParams) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
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
  if (res.status === 401 && !opts.noRedirect) {
    sessionStorage.removeItem(KEY);
    location.replace("/console/?expired=1&next=" + encodeURIComponent(location.pathname));
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body, opts) => api("POST", path, body, opts);
