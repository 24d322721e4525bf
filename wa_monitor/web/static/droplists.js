// WA Monitor admins' projects page, drop number lists: each project's list, its upload, and
// the reconciliation of a day's list with the group's posts.
"use strict";

(() => {
  const { boot, $, h, api, ApiFailure } = window.WaMonitor;
  const uploadForm = $("#upload-list");
  const reconcileForm = $("#reconcile");
  let uploading = null; // the project whose list the upload form replaces

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const text = d.toLocaleString("sv-SE", { timeZone: boot.timezone, hour12: false });
    return `${text.slice(0, 16)} ${boot.zoneAbbr}`;
  }

  function today() {
    // The business day, whatever the browser's zone: sv-SE writes YYYY-MM-DD.
    return new Date().toLocaleDateString("sv-SE", { timeZone: boot.timezone });
  }

  function setStatus(text, kind = "") {
    const el = $("#lists-status");
    el.textContent = text;
    el.dataset.kind = kind;
  }

  // A multipart POST (an upload): the envelope's data, or its error as ApiFailure.
  async function send(path, form) {
    return (await api("POST", path, form)).body;
  }

  function showError(box, message) {
    box.replaceChildren(h("p", { text: message }));
    box.hidden = false;
  }

  // -- the lists ----------------------------------------------------------------------

  function renderLists(lists) {
    const rows = lists.map((l) =>
      h(
        "tr",
        { "data-project": l.project },
        h("th", { scope: "row", "data-label": "Project", text: l.project }),
        h("td", { "data-label": "Numbers", class: "list-total", text: l.total ? String(l.total) : "No list" }),
        h("td", { "data-label": "Imported", text: l.total || l.importedAt ? when(l.importedAt) : "" }),
        h("td", { "data-label": "By", text: l.importedBy || "" }),
        h(
          "td",
          { class: "row-action" },
          h(
            "button",
            { type: "button", "aria-label": `Upload the list of ${l.project}`, onclick: () => openUpload(l.project) },
            "Upload list"
          )
        )
      )
    );
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "5", class: "muted", text: "No projects yet" })));
    $("#lists-rows").replaceChildren(...rows);
    const select = $("#reconcile-project");
    const chosen = select.value;
    select.replaceChildren(...lists.map((l) => h("option", { value: l.project, text: l.project })));
    if (chosen && lists.some((l) => l.project === chosen)) select.value = chosen;
  }

  async function loadLists() {
    try {
      const data = await window.WaMonitor.api("GET", "/api/wa-monitor-drop-lists");
      renderLists(data.body.data);
    } catch (e) {
      if (e.status !== 401) setStatus(`Could not load the drop lists: ${e.message}`, "bad");
    }
  }

  // -- the upload ---------------------------------------------------------------------

  function openUpload(project) {
    uploading = project;
    $("#upload-project").textContent = project;
    $("#upload-error").hidden = true;
    uploadForm.reset();
    uploadForm.hidden = false;
    $("#upload-file").focus();
  }

  function closeUpload() {
    uploadForm.hidden = true;
    const back = document.querySelector(`#lists-rows tr[data-project="${CSS.escape(uploading || "")}"] button`);
    uploading = null;
    if (back) back.focus();
  }

  function uploadSummary(data) {
    const d = data.data;
    let text = `${d.project}: ${d.total} numbers (${d.added} added, ${d.removed} removed)`;
    if (d.changed) text += `; ${d.changed} drop(s) changed validity`;
    if (d.rejected) {
      const cells = d.rejectedCells.map((c) => `row ${c.row} "${c.value}"`).join(", ");
      text += `; ${d.rejected} cell(s) skipped, not drop numbers: ${cells}${d.rejected > d.rejectedCells.length ? " …" : ""}`;
    }
    return text;
  }

  async function upload(event) {
    event.preventDefault();
    const box = $("#upload-error");
    box.hidden = true;
    const file = $("#upload-file").files[0];
    if (!file) return showError(box, "Choose the client's list (a CSV or XLSX file)");
    const form = new FormData();
    form.append("file", file);
    const column = $("#upload-column").value.trim();
    if (column) form.append("column", column);
    const submit = $("#upload-submit");
    submit.disabled = true;
    const project = uploading;
    try {
      const data = await send(`/api/wa-monitor-drop-lists/${encodeURIComponent(project)}`, form);
      setStatus(uploadSummary(data), data.data.rejected ? "warn" : "good");
      await loadLists();
      closeUpload();
    } catch (e) {
      if (e.status !== 401) showError(box, `The list of ${project} is unchanged: ${e.message}`);
    } finally {
      submit.disabled = false;
    }
  }

  // -- the reconciliation -------------------------------------------------------------

  // A phone shows each cell on its own line, labelled (the table's head is hidden there).
  function cell(kind, label, number) {
    return h("td", number ? { class: kind, "data-label": label, text: number } : { class: kind });
  }

  function renderReconciliation(d) {
    $("#not-posted-head").textContent = `On the list, never posted (${d.notPosted.length})`;
    $("#not-listed-head").textContent = `Posted that day, not on the list (${d.notListed.length})`;
    const rows = [];
    for (let i = 0; i < Math.max(d.notPosted.length, d.notListed.length); i++) {
      rows.push(
        h(
          "tr",
          {},
          cell("not-posted", "On the list, never posted", d.notPosted[i]),
          cell("not-listed", "Posted that day, not on the list", d.notListed[i])
        )
      );
    }
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "2", class: "muted", text: "The list and the group agree" })));
    $("#reconcile-rows").replaceChildren(...rows);
    $("#reconcile-summary").textContent = `${d.project} on ${d.date}: ${d.listed} numbers on the list`;
    $("#reconcile-result").hidden = false;
  }

  async function reconcile(event) {
    event.preventDefault();
    const box = $("#reconcile-error");
    box.hidden = true;
    const file = $("#reconcile-file").files[0];
    if (!file) return showError(box, "Choose the client's list of the day (a CSV or XLSX file)");
    const form = new FormData();
    form.append("file", file);
    form.append("project", $("#reconcile-project").value);
    const day = $("#reconcile-date").value;
    if (day) form.append("date", day);
    const column = $("#reconcile-column").value.trim();
    if (column) form.append("column", column);
    const submit = $("#reconcile-submit");
    submit.disabled = true;
    try {
      const data = await send("/api/wa-monitor-reconcile", form);
      renderReconciliation(data.data);
    } catch (e) {
      if (e.status !== 401) showError(box, e.message);
    } finally {
      submit.disabled = false;
    }
  }

  // -- wiring -------------------------------------------------------------------------

  uploadForm.addEventListener("submit", upload);
  $("#upload-cancel").addEventListener("click", closeUpload);
  reconcileForm.addEventListener("submit", reconcile);
  $("#reconcile-date").value = today();
  // Loaded once the projects are (and again whenever they change: a project added).
  document.addEventListener("wa-projects-changed", loadLists);
  loadLists();
})();
