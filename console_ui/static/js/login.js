import { api, ApiError, saveSession, session } from "./api.js";

export const PAGES = {
  call_handler: "/console/handler/",
  dispatcher: "/console/dispatcher/",
  supervisor: "/console/supervisor/",
  unit: "/console/unit/",
  admin: "/console/dispatcher/",
};

const params = new URLSearchParams(location.search);
if (params.get("expired")) {
  document.getElementById("signin-note").textContent = "Your session ended: please sign in again.";
}

const existing = session();
if (existing && existing.token && PAGES[existing.role] && !params.get("expired")) {
  location.replace(PAGES[existing.role]);
}

document.getElementById("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("signin-error");
  err.textContent = "";
  const form = new URLSearchParams();
  form.set("username", document.getElementById("username").value.trim());
  form.set("password", document.getElementById("password").value);
  try {
    const tok = await api("POST", "/api/auth/token", form, { noRedirect: true });
    // A new sign-in starts the event stream afresh.
    sessionStorage.removeItem(`cad.lastSeq.${tok.username}`);
    saveSession({
      token: tok.access_token,
      role: tok.role,
      username: tok.username,
      unit_id: tok.unit_id,
    });
    location.assign(PAGES[tok.role] || "/console/");
  } catch (ex) {
    err.textContent =
      ex instanceof ApiError && ex.status === 401
        ? "Wrong username or password."
        : `Sign-in failed: ${ex.message}`;
  }
});
