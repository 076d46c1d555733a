import { api, ApiError, saveSession, session } from "./api.js";

export const PAGES = {
  call_handler: "/console/handler/",
  dispatcher: "/console/dispatcher/",
  supervisor: "/console/supervisor/",
  unit: "/console/unit/",
  admin: "/console/admin/",
};

const params = new URLSearchParams(location.search);
if (params.get("expired")) {
  const why = params.get("reason");
  document.getElementById("signin-note").textContent =
    "Your session ended" + (why ? ` (${why})` : "") + ": please sign in again.";
}

const existing = session();
if (existing && existing.role && PAGES[existing.role] && !params.get("expired")) {
  location.replace(PAGES[existing.role]);
}

function signedIn(tok) {
  // A new sign-in starts the event stream afresh.
  sessionStorage.removeItem(`cad.lastSeq.${tok.username}`);
  saveSession({ role: tok.role, username: tok.username, unit_id: tok.unit_id });
  location.assign(PAGES[tok.role] || "/console/");
}

function explain(ex) {
  if (!(ex instanceof ApiError)) return `Sign-in failed: ${ex.message}`;
  if (ex.status === 401) return "Wrong username or password.";
  if (ex.status === 429) return ex.message.charAt(0).toUpperCase() + ex.message.slice(1) + ".";
  return `Sign-in failed: ${ex.message}`;
}

const signinForm = document.getElementById("signin");
const changeForm = document.getElementById("change");

signinForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("signin-error");
  err.textContent = "";
  const form = new URLSearchParams();
  form.set("username", document.getElementById("username").value.trim());
  form.set("password", document.getElementById("password").value);
  form.set("client_id", "console");
  try {
    signedIn(await api("POST", "/api/auth/token", form, { noRedirect: true }));
  } catch (ex) {
    if (ex instanceof ApiError && ex.body.reason === "password_change_required") {
      signinForm.hidden = true;
      changeForm.hidden = false;
      document.getElementById("new-password").focus();
      return;
    }
    err.textContent = explain(ex);
  }
});

changeForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("change-error");
  err.textContent = "";
  const next = document.getElementById("new-password").value;
  if (next !== document.getElementById("new-password-2").value) {
    err.textContent = "The two new passwords differ.";
    return;
  }
  try {
    const tok = await api(
      "POST",
      "/api/auth/password",
      {
        username: document.getElementById("username").value.trim(),
        current_password: document.getElementById("password").value,
        new_password: next,
        client_id: "console",
      },
      { noRedirect: true },
    );
    signedIn(tok);
  } catch (ex) {
    const field = ex instanceof ApiError && ex.errors.find((f) => f.field === "new_password");
    err.textContent = field ? `New password: ${field.reason}.` : explain(ex);
  }
});
