// Administration: the accounts, adding one, and per account disable/enable, password
// reset, role or unit change, ending its sessions and lifting a sign-in lockout.
// Every value from the server goes in as text (textContent), never as markup.
import { ApiError, get, patch, post, requireSession } from "./api.js";
import { $, $$, fmtTime, showConnState, showError, throttle, topbar } from "./common.js";
import { EventStream } from "./stream.js";

const s = await requireSession(["admin"]);
topbar("Administration · Users", s);

const ROLES = [
  ["call_handler", "Call handler"],
  ["dispatcher", "Dispatcher"],
  ["supervisor", "Supervisor"],
  ["unit", "Unit"],
  ["admin", "Administrator"],
];
const ROLE_NAME = Object.fromEntries(ROLES);
const PERIOD_MS = 30000; // lockouts run out and sessions expire with no event to say so

let users = [];
/** The inline form open under one row: {username, kind: "password" | "role"}. */
let editing = null;
/** The last outcome per account, shown in its row: {text, kind: "ok" | "error"}. */
const notes = new Map();
let fresh = null; // the account just added, flashed once

/** A DOM element; `text` goes in as textContent, other keys as attributes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function fillRoles(select, selected) {
  select.replaceChildren(
    ...ROLES.map(([value, label]) =>
      el("option", { value, text: label, selected: value === selected }),
    ),
  );
}

const userPath = (name) => `/api/users/${encodeURIComponent(name)}`;

function lockedUntil(u) {
  if (!u.locked_until) return null;
  const t = new Date(u.locked_until);
  return t.getTime() > Date.now() ? t : null;
}

function lockText(t) {
  const sameDay = t.toDateString() === new Date().toDateString();
  const day = sameDay
    ? ""
    : `${t.toLocaleDateString("en-GB", { day: "2-digit", month: "short" })} `;
  return `locked until ${day}${fmtTime(t.toISOString())}`;
}

function statusCell(u) {
  const td = el("td", { class: "status" });
  const chips = [];
  const locked = lockedUntil(u);
  if (u.disabled) chips.push(["disabled", "disabled"]);
  else chips.push(["active", "active"]);
  if (locked) chips.push([lockText(locked), "locked"]);
  if (u.must_change_password) chips.push(["must change password", "must-change"]);
  if (u.demo) chips.push(["demo", "demo"]);
  for (const [text, kind] of chips) {
    const title = kind === "locked" ? `sign-in refused until ${u.locked_until}` : null;
    td.append(el("span", { class: `chip acct-${kind}`, "data-status": kind, title, text }), " ");
  }
  return td;
}

function actionsCell(u) {
  const self = u.username === s.username;
  const locked = lockedUntil(u);
  const td = el("td", { class: "actions" });
  const box = el("div", { class: "actions-box" });
  td.append(box);
  const btn = (action, text, extra = {}) =>
    el("button", { type: "button", "data-action": action, text, ...extra });
  if (locked) box.append(btn("unlock", "Unlock", { class: "primary" }));
  box.append(
    u.disabled
      ? btn("enable", "Enable")
      : btn("disable", "Disable", {
          class: "danger",
          disabled: self,
          title: self ? "You cannot disable your own account" : null,
        }),
    btn("password", "Reset password", {
      "aria-expanded": String(editing?.username === u.username && editing.kind === "password"),
    }),
    btn("role", "Role / unit", {
      "aria-expanded": String(editing?.username === u.username && editing.kind === "role"),
    }),
    btn("end", "End sessions", {
      disabled: !u.open_sessions,
      title: u.open_sessions ? null : "No open sessions",
    }),
  );
  const note = notes.get(u.username);
  if (note) {
    box.append(el("p", { class: `row-note ${note.kind}`, role: "status", text: note.text }));
  }
  return td;
}

function userRow(u) {
  const self = u.username === s.username;
  const tr = el(
    "tr",
    { "data-username": u.username },
    el(
      "td",
      { class: "username" },
      el("strong", { text: u.username }),
      self ? el("span", { class: "hint", text: " (you)" }) : null,
    ),
    el("td", { "data-col": "role", text: ROLE_NAME[u.role] || u.role }),
    el("td", { "data-col": "unit", text: u.unit_callsign || "—" }),
    statusCell(u),
    el("td", { class: "num", "data-col": "sessions", text: String(u.open_sessions) }),
    actionsCell(u),
  );
  tr.classList.toggle("is-disabled", u.disabled);
  tr.classList.toggle("new", fresh === u.username);
  tr.classList.toggle("editing", editing?.username === u.username);
  return tr;
}

function field(name, labelText, control) {
  return el(
    "div",
    { class: "field", "data-field": name },
    el("label", { for: control.id, text: labelText }),
    control,
    el("p", { class: "field-error", role: "alert" }),
  );
}

function editorRow(u) {
  const form = el("form", {
    class: "inline-form",
    "data-kind": editing.kind,
    autocomplete: "off",
    novalidate: true,
  });
  if (editing.kind === "password") {
    const input = el("input", {
      id: "reset-password",
      type: "password",
      autocomplete: "new-password",
      maxlength: 200,
      required: true,
    });
    form.append(
      el("p", {
        class: "hint",
        text:
          `A temporary password for ${u.username}: they choose their own at next ` +
          "sign-in, and every session they have ends now.",
      }),
      el("div", { class: "inline-fields" }, field("password", "New temporary password", input)),
    );
  } else {
    const role = el("select", { id: "edit-role", class: "role-select" });
    fillRoles(role, u.role);
    const unit = el("input", {
      id: "edit-unit",
      maxlength: 20,
      list: "callsigns",
      spellcheck: "false",
      value: u.unit_callsign || "",
    });
    const unitField = field("unit_callsign", "Unit callsign", unit);
    unitField.hidden = u.role !== "unit";
    role.addEventListener("change", () => {
      unitField.hidden = role.value !== "unit";
    });
    form.append(
      el("p", {
        class: "hint",
        text: `A change of role or unit signs ${u.username} out everywhere at once.`,
      }),
      el("div", { class: "inline-fields" }, field("role", "Role", role), unitField),
    );
  }
  form.append(
    el("p", { class: "field-error form-error", role: "alert" }),
    el(
      "div",
      { class: "inline-buttons" },
      el("button", { type: "submit", class: "primary", text: "Save" }),
      el("button", { type: "button", "data-action": "cancel", text: "Cancel" }),
    ),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveEditor(form, u);
  });
  form.querySelector("[data-action=cancel]").addEventListener("click", closeEditor);
  form.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeEditor();
  });
  const td = el("td", { colspan: 6 }, form);
  return el("tr", { class: "editor", "data-editor-for": u.username }, td);
}

function render() {
  // An open form keeps what is typed in it: data that arrives meanwhile is drawn once it closes.
  if (editing && document.querySelector("tr.editor")) return;
  const body = $("#users tbody");
  const rows = [];
  for (const u of users) {
    rows.push(userRow(u));
    if (editing && editing.username === u.username) rows.push(editorRow(u));
  }
  body.replaceChildren(...rows);
  $("#user-count").textContent = String(users.length);
  $("#users-empty").hidden = users.length > 0;
  const ed = $("tr.editor input, tr.editor select");
  if (ed) ed.focus();
}

function closeEditor() {
  const who = editing && editing.username;
  editing = null;
  const row = $("tr.editor");
  if (row) row.remove();
  render();
  const back = who && $$("#users tbody tr[data-username]").find((r) => r.dataset.username === who);
  if (back) back.querySelector("button")?.focus();
}

/** Put each {field, reason} next to its field in `root`; the rest in `general`. */
function showErrors(root, general, err) {
  for (const f of $$(".field", root)) {
    f.classList.remove("invalid");
    $(".field-error", f).textContent = "";
  }
  general.textContent = "";
  if (!(err instanceof ApiError)) {
    general.textContent = String(err && err.message ? err.message : err);
    return;
  }
  const rest = [];
  for (const e of err.errors) {
    const f = $$(".field", root).find((x) => x.dataset.field === e.field && !x.hidden);
    if (f) {
      f.classList.add("invalid");
      $(".field-error", f).textContent = e.reason;
    } else {
      rest.push(`${e.field}: ${e.reason}`);
    }
  }
  if (!err.errors.length) rest.push(err.message);
  general.textContent = rest.join("; ");
}

async function saveEditor(form, shown) {
  const u = users.find((x) => x.username === shown.username) || shown;
  const kind = form.dataset.kind;
  const general = $(".form-error", form);
  const body = {};
  if (kind === "password") {
    body.password = $("#reset-password", form).value;
    if (!body.password) {
      const errors = [{ field: "password", reason: "enter a temporary password" }];
      showErrors(form, general, new ApiError(422, { detail: "required", errors }));
      return;
    }
  } else {
    const role = $("#edit-role", form).value;
    const unit = $("#edit-unit", form).value.trim();
    if (role !== u.role) body.role = role;
    if (role === "unit" && unit && unit !== (u.unit_callsign || "")) body.unit_callsign = unit;
    if (!Object.keys(body).length) {
      general.textContent = "Nothing changed.";
      return;
    }
  }
  for (const b of $$("button", form)) b.disabled = true;
  try {
    const updated = await patch(userPath(u.username), body);
    notes.set(u.username, {
      kind: "ok",
      text:
        kind === "password"
          ? "Password reset: it must be changed at next sign-in."
          : `Now ${ROLE_NAME[updated.role] || updated.role}` +
            (updated.unit_callsign ? ` on ${updated.unit_callsign}.` : "."),
    });
    replaceUser(updated);
    editing = null;
    $("tr.editor")?.remove();
    render();
    reload();
  } catch (err) {
    for (const b of $$("button", form)) b.disabled = false;
    showErrors(form, general, err);
    const bad = $(".field.invalid input, .field.invalid select", form);
    if (bad) bad.focus();
  }
}

function replaceUser(updated) {
  users = users.map((u) => (u.username === updated.username ? updated : u));
}

async function rowAction(action, u, button) {
  if (action === "password" || action === "role") {
    const same = editing && editing.username === u.username && editing.kind === action;
    editing = null;
    $("tr.editor")?.remove();
    if (!same) editing = { username: u.username, kind: action };
    render();
    return;
  }
  if (editing) {
    editing = null; // the admin has moved on
    $("tr.editor")?.remove();
  }
  button.disabled = true;
  notes.delete(u.username);
  try {
    if (action === "disable" || action === "enable") {
      const updated = await patch(userPath(u.username), { disabled: action === "disable" });
      replaceUser(updated);
      notes.set(u.username, {
        kind: "ok",
        text: action === "disable" ? "Disabled: signed out everywhere." : "Enabled.",
      });
    } else if (action === "end") {
      const r = await post(`${userPath(u.username)}/end-sessions`);
      const text = `${r.ended} session${r.ended === 1 ? "" : "s"} ended.`;
      notes.set(u.username, { kind: "ok", text });
    } else if (action === "unlock") {
      const r = await post(`${userPath(u.username)}/unlock`);
      notes.set(u.username, { kind: "ok", text: r.was_locked ? "Unlocked." : "Was not locked." });
    }
  } catch (err) {
    const text = err instanceof ApiError ? err.message : String(err);
    notes.set(u.username, { kind: "error", text });
  }
  render();
  reload();
}

$("#users tbody").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button || button.closest("tr.editor")) return;
  const name = button.closest("tr[data-username]").dataset.username;
  const u = users.find((x) => x.username === name);
  if (u) rowAction(button.dataset.action, u, button);
});

// Add user
const addForm = $("#add-user");
const addRole = $("#add-role");
fillRoles(addRole, "dispatcher");
function syncUnitField() {
  $("#add-unit-field").hidden = addRole.value !== "unit";
}
addRole.addEventListener("change", syncUnitField);
syncUnitField();

addForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#add-ok").textContent = "";
  const body = {
    username: $("#add-username").value.trim(),
    role: addRole.value,
    password: $("#add-password").value,
  };
  const unit = $("#add-unit").value.trim();
  if (body.role === "unit" && unit) body.unit_callsign = unit;
  const general = $("#add-error");
  const submit = $("button[type=submit]", addForm);
  submit.disabled = true;
  try {
    const created = await post("/api/users", body);
    general.textContent = "";
    addForm.reset();
    fillRoles(addRole, "dispatcher");
    syncUnitField();
    $("#add-ok").textContent =
      `Added ${created.username} (${ROLE_NAME[created.role] || created.role}). Give them ` +
      "the temporary password: they choose their own at first sign-in.";
    fresh = created.username;
    setTimeout(() => {
      if (fresh === created.username) fresh = null;
    }, 2000);
    users = [...users.filter((u) => u.username !== created.username), created].sort((a, b) =>
      a.username.localeCompare(b.username),
    );
    render();
    reload();
  } catch (err) {
    if (err instanceof ApiError && err.status === 409 && !err.errors.length) {
      err.errors = [{ field: "username", reason: err.message }];
    }
    showErrors(addForm, general, err);
    const bad = $(".field.invalid input, .field.invalid select", addForm);
    if (bad) bad.focus();
  } finally {
    submit.disabled = false;
  }
});

addForm.addEventListener("input", (e) => {
  const f = e.target.closest(".field");
  if (f && f.classList.contains("invalid")) {
    f.classList.remove("invalid");
    $(".field-error", f).textContent = "";
  }
});
addForm.addEventListener("reset", () => {
  for (const f of $$(".field", addForm)) {
    f.classList.remove("invalid");
    $(".field-error", f).textContent = "";
  }
});

async function load() {
  const r = await get("/api/users");
  users = r.users;
  $("#users-error").textContent = "";
  $("#updated").textContent = `updated ${fmtTime(new Date().toISOString())}`;
  render();
}
const reload = throttle(
  () =>
    load().catch((err) => {
      $("#users-error").textContent = `Could not load the accounts: ${err.message}`;
    }),
  1000,
);
$("#refresh").addEventListener("click", reload);

async function loadCallsigns() {
  try {
    const units = await get("/api/units");
    $("#callsigns").replaceChildren(
      ...units.map((u) => u.callsign).sort().map((c) => el("option", { value: c })),
    );
  } catch (err) {
    showError(err);
  }
}

// Sessions ending and lockouts come as account events; sign-ins do not, hence the timer.
const stream = new EventStream({
  onEvent: (ev) => {
    if (ev.type.startsWith("auth.")) reload();
  },
  onState: showConnState,
  onResync: reload,
});
reload();
loadCallsigns();
stream.start();
setInterval(() => {
  if (!editing) reload();
}, PERIOD_MS);
