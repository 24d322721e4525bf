// WA Monitor admins' projects page: list, add, disable and enable projects; recent changes.
"use strict";

(() => {
  const { boot, $, h } = window.WaMonitor;
  const form = $("#add-project");
  const errorBox = $("#add-error");
  let busy = false;

  async function api(method, path, body) {
    return (await window.WaMonitor.api(method, path, body)).body;
  }

  // Times as the admins read them: in the business zone, with its abbreviation.
  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const text = d.toLocaleString("sv-SE", { timeZone: boot.timezone, hour12: false });
    return `${text.slice(0, 16)} ${boot.zoneAbbr}`;
  }

  function setStatus(text, kind = "") {
    const el = $("#projects-status");
    el.textContent = text;
    el.dataset.kind = kind;
  }

  // -- the list -----------------------------------------------------------------------

  // One cell per field of boot.fields, the first (the name) heading its row.
  function cell(f, p, first) {
    const value = p[f.name];
    if (first) return h("th", { scope: "row", "data-label": f.column, text: value });
    if (f.kind === "jid") return h("td", { "data-label": f.column }, h("code", { text: value }));
    if (f.kind === "flag")
      return h(
        "td",
        { "data-label": f.column },
        h("span", { class: `chip ${value ? "good" : "bad"}`, text: value ? f.label : f.off })
      );
    return h("td", { "data-label": f.column, text: value || "" });
  }

  function renderProjects(projects) {
    const rows = projects.map((p) => {
      const action = p.enabled ? "disable" : "enable";
      const label = p.enabled ? "Disable" : "Enable";
      return h(
        "tr",
        { "data-name": p.name, class: p.enabled ? "" : "off" },
        ...boot.fields.map((f, i) => cell(f, p, i === 0)),
        h(
          "td",
          { class: "row-action" },
          h(
            "button",
            {
              type: "button",
              class: p.enabled ? "" : "primary",
              "data-action": action,
              "aria-label": `${label} ${p.name}`,
              onclick: () => toggle(p.name, action),
            },
            label
          )
        )
      );
    });
    const columns = String(boot.fields.length + 1);
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: columns, class: "muted", text: "No projects yet" })));
    $("#projects-rows").replaceChildren(...rows);
    const on = projects.filter((p) => p.enabled).length;
    $("#projects-count").textContent = `(${on} enabled of ${projects.length})`;
    // The page's other panels (the drop lists) follow the projects.
    document.dispatchEvent(new CustomEvent("wa-projects-changed"));
  }

  function diffLines(diff) {
    return diff.split("\n").map((line, i, all) => {
      const text = i < all.length - 1 ? `${line}\n` : line;
      if (line.startsWith("+++") || line.startsWith("---")) return h("span", { class: "file", text });
      if (line.startsWith("@@")) return h("span", { class: "hunk", text });
      if (line.startsWith("+")) return h("span", { class: "add", text });
      if (line.startsWith("-")) return h("span", { class: "del", text });
      return text;
    });
  }

  function renderHistory(history) {
    const items = history.map((r) =>
      h(
        "li",
        { class: "change" },
        h(
          "p",
          { class: "change-head" },
          h("time", { datetime: r.at, text: when(r.at) }),
          " · ",
          h("strong", { class: "actor", text: r.actor }),
          r.source ? h("span", { class: "chip", text: r.source }) : null
        ),
        h("pre", { class: "diff", tabindex: "0", "aria-label": `Change by ${r.actor} at ${when(r.at)}` }, diffLines(r.diff || "(no diff)"))
      )
    );
    if (!items.length) items.push(h("li", { class: "muted", text: "No changes recorded yet" }));
    $("#history").replaceChildren(...items);
  }

  async function load() {
    try {
      const data = await api("GET", "/api/wa-monitor-projects");
      renderProjects(data.data.projects);
      renderHistory(data.data.history);
      $("#live").textContent = data.message || "";
      $("#live").classList.toggle("bad", Boolean(data.message));
    } catch (e) {
      if (e.status !== 401) setStatus(`Could not load the projects: ${e.message}`, "bad");
    }
  }

  // -- enable / disable ---------------------------------------------------------------

  async function toggle(name, action) {
    if (busy) return;
    busy = true;
    const buttons = document.querySelectorAll("#projects-rows button");
    for (const b of buttons) b.disabled = true;
    try {
      const data = await api("POST", `/api/wa-monitor-projects/${encodeURIComponent(name)}/${action}`);
      setStatus(auditNote(data), data.data.audited ? "good" : "warn");
    } catch (e) {
      setStatus(`${name} not changed: ${e.message}`, "bad");
    } finally {
      busy = false;
    }
    await load();
    // Keep the keyboard where it was: on the same project's (now opposite) button.
    const again = document.querySelector(`#projects-rows tr[data-name="${CSS.escape(name)}"] button`);
    if (again) again.focus();
  }

  function auditNote(data) {
    return data.data.audited ? data.message : `${data.message} (not recorded in the change history)`;
  }

  // -- the add form -------------------------------------------------------------------

  // The form's inputs, one per field the server lists in boot.fields (and the group's
  // name, which stands in for its JID), keyed as the API names them.
  const FIELD_INPUT = { groupName: "#add-groupName" };
  for (const f of boot.fields) FIELD_INPUT[f.name] = `#add-${f.name}`;
  const JID = boot.fields.find((f) => f.kind === "jid").name;

  function by() {
    return form.elements.by.value;
  }

  function syncBy() {
    const jid = by() === "jid";
    $("#jid-field").hidden = !jid;
    $("#group-name-field").hidden = jid;
  }

  function clearErrors() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
    for (const sel of Object.values(FIELD_INPUT)) $(sel).removeAttribute("aria-invalid");
  }

  // Which field an error is about: the API's validation details, or its message's wording.
  function fieldsFor(error) {
    const fields = new Set();
    for (const d of error.details) {
      const key = String(d.field || "").split(".").pop();
      if (FIELD_INPUT[key]) fields.add(key);
    }
    if (!fields.size) {
      const m = error.message.toLowerCase();
      if (/already exists|project named/.test(m)) fields.add("name");
      else if (by() === "jid" && /jid|group/.test(m)) fields.add(JID);
      else if (by() === "name" && /group/.test(m)) fields.add("groupName");
    }
    return [...fields];
  }

  function showError(error) {
    const list = error.details
      .filter((d) => d.message)
      .map((d) => h("li", { text: `${String(d.field || "").replace(/^body\./, "")}: ${d.message}` }));
    // replaceChildren() would show a null as the text "null".
    errorBox.replaceChildren(h("p", { text: error.message }), ...(list.length ? [h("ul", {}, list)] : []));
    errorBox.hidden = false;
    const fields = fieldsFor(error);
    for (const f of fields) $(FIELD_INPUT[f]).setAttribute("aria-invalid", "true");
    if (fields.length) $(FIELD_INPUT[fields[0]]).focus();
  }

  async function add(event) {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    const body = {};
    for (const f of boot.fields) {
      const input = $(FIELD_INPUT[f.name]);
      if (f.kind === "flag") body[f.name] = input.checked;
      else if (f.kind !== "jid" && (f.required || input.value.trim())) body[f.name] = input.value.trim();
    }
    if (by() === "jid") body[JID] = $(FIELD_INPUT[JID]).value.trim();
    else body.groupName = $(FIELD_INPUT.groupName).value.trim();
    // The obvious mistakes, before asking the server (which checks everything again).
    if (!body.name) return showError({ message: "Give the project a name", details: [{ field: "name" }] });
    if (!body[JID] && !body.groupName)
      return showError({
        message: by() === "jid" ? "Give the group's JID (<digits>@g.us)" : "Give the group's name",
        details: [{ field: by() === "jid" ? JID : "groupName" }],
      });
    busy = true;
    const submit = $("#add-submit");
    submit.disabled = true;
    try {
      const data = await api("POST", "/api/wa-monitor-projects", body);
      setStatus(auditNote(data), data.data.audited ? "good" : "warn");
      form.reset();
      syncBy();
      await load();
      $("#add-name").focus();
    } catch (e) {
      if (e.status !== 401) showError(e);
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  // -- wiring -------------------------------------------------------------------------

  form.addEventListener("submit", add);
  form.addEventListener("change", (e) => {
    if (e.target.name === "by") syncBy();
  });
  syncBy();
  load();
})();
