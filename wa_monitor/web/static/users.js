// WA Monitor admins' users page: list, add, role, disable / enable, reset a password; audit.
"use strict";

(() => {
  const { boot, $, h } = window.WaMonitor;
  const dialog = $("#password-dialog");
  let resetting = null; // the user name whose password the dialog sets

  async function api(method, path, body) {
    return (await window.WaMonitor.api(method, path, body)).body;
  }

  // Times as the admins read them: in the business zone, with its abbreviation.
  function when(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const text = d.toLocaleString("sv-SE", { timeZone: boot.timezone, hour12: false });
    return `${text.slice(0, 16)} ${boot.zoneAbbr}`;
  }

  function setStatus(text, kind = "") {
    const el = $("#users-status");
    el.textContent = text;
    el.dataset.kind = kind;
  }

  // -- the list -----------------------------------------------------------------------

  function roleSelect(u) {
    const self = u.username === boot.user;
    return h(
      "select",
      {
        "aria-label": `Role of ${u.username}`,
        "data-role-of": u.username,
        // Admins cannot demote themselves: another admin has to.
        disabled: self,
        title: self ? "You cannot change your own role" : null,
        onchange: (e) => change(u.username, { role: e.target.value }, `${u.username} is now a ${e.target.value}`),
      },
      boot.roles.map((r) => h("option", { value: r, text: r, selected: r === u.role }))
    );
  }

  function actions(u) {
    const self = u.username === boot.user;
    const toggle = u.disabled ? "Enable" : "Disable";
    return h(
      "td",
      { class: "row-action" },
      self
        ? h("span", { class: "muted small", text: "You" })
        : h(
            "button",
            {
              type: "button",
              class: u.disabled ? "primary" : "",
              "aria-label": `${toggle} ${u.username}`,
              onclick: () => change(u.username, { disabled: !u.disabled }, `${u.username} ${u.disabled ? "enabled" : "disabled"}`),
            },
            toggle
          ),
      " ",
      h("button", { type: "button", "aria-label": `Reset the password of ${u.username}`, onclick: () => askPassword(u.username) }, "Reset password")
    );
  }

  function renderUsers(users) {
    const rows = users.map((u) =>
      h(
        "tr",
        { "data-user": u.username, class: u.disabled ? "off" : "" },
        h("th", { scope: "row", "data-label": "User", text: u.username }),
        h("td", { "data-label": "Role" }, roleSelect(u)),
        h("td", { "data-label": "Account" }, h("span", { class: `chip ${u.disabled ? "bad" : "good"}`, text: u.disabled ? "Disabled" : "Active" })),
        h("td", { "data-label": "Last sign-in", text: when(u.lastLoginAt) }),
        actions(u)
      )
    );
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "5", class: "muted", text: "No users yet" })));
    $("#users-rows").replaceChildren(...rows);
    const active = users.filter((u) => !u.disabled).length;
    $("#users-count").textContent = `(${active} active of ${users.length})`;
  }

  function renderAudit(changes) {
    const items = changes.map((c) =>
      h(
        "li",
        {},
        h("time", { datetime: c.at, text: c.atLocal || when(c.at) }),
        " ",
        h("strong", { text: c.actor }),
        ": ",
        h("span", { class: "who", text: c.username }),
        ` ${c.change}`
      )
    );
    if (!items.length) items.push(h("li", { class: "muted", text: "No account changes recorded yet" }));
    $("#audit").replaceChildren(...items);
  }

  async function load() {
    try {
      const [list, audit] = await Promise.all([api("GET", "/api/wa-monitor-users"), api("GET", "/api/wa-monitor-users-audit")]);
      renderUsers(list.data);
      renderAudit(audit.data);
    } catch (e) {
      setStatus(`Not loaded: ${e.message}`, "bad");
    }
  }

  async function change(username, body, done) {
    try {
      await api("PATCH", `/api/wa-monitor-users/${encodeURIComponent(username)}`, body);
      setStatus(done, "good");
    } catch (e) {
      setStatus(`Not changed: ${e.message}`, "bad");
    }
    await load();
  }

  // -- adding -------------------------------------------------------------------------

  // The API's validation answer as lines an admin can act on.
  function problems(e) {
    const details = Array.isArray(e.details) ? e.details : [];
    const lines = details.map((d) => `${(d.loc || []).slice(-1)[0] || "input"}: ${d.msg || d.message || ""}`.trim());
    return lines.length ? lines : [e.message];
  }

  function showError(box, lines) {
    box.replaceChildren(...lines.map((l) => h("p", { text: l })));
    box.hidden = false;
  }

  $("#add-user").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const box = $("#add-error");
    box.hidden = true;
    const body = { username: form.username.value.trim(), password: form.password.value, role: form.role.value };
    if (!body.username) return showError(box, ["Give the user a name (letters, digits and . _ @ -)."]);
    if (body.password.length < boot.minPassword) return showError(box, [`The password must be at least ${boot.minPassword} characters long.`]);
    try {
      await api("POST", "/api/wa-monitor-users", body);
      form.reset();
      setStatus(`${body.username} added as ${body.role}`, "good");
      await load();
    } catch (e) {
      showError(box, problems(e));
    }
  });

  // -- resetting a password -----------------------------------------------------------

  function askPassword(username) {
    resetting = username;
    $("#password-title").textContent = `Reset the password of ${username}`;
    $("#new-password").value = "";
    $("#password-error").hidden = true;
    dialog.showModal();
    $("#new-password").focus();
  }

  $("#password-cancel").addEventListener("click", () => dialog.close());
  $("#password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = $("#new-password").value;
    const box = $("#password-error");
    if (password.length < boot.minPassword) {
      box.textContent = `The password must be at least ${boot.minPassword} characters long.`;
      box.hidden = false;
      return;
    }
    try {
      const res = await api("POST", `/api/wa-monitor-users/${encodeURIComponent(resetting)}/password`, { password });
      dialog.close();
      setStatus(res.message, "good");
      await load();
    } catch (e) {
      box.textContent = problems(e).join(" ");
      box.hidden = false;
    }
  });

  load();
})();
