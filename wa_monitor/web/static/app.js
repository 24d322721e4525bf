// WA Monitor reviewers' page: polls the JSON API, never overwrites unsaved edits.
"use strict";

(() => {
  const { boot, $, h, api } = window.WaMonitor;
  const state = {
    drops: [],
    limit: 100, // drops shown; "Show more" raises it
    openId: null,
    open: null, // the drop shown in the editor
    dirty: false, // unsaved edits in the editor
    drafting: false, // a feedback draft is open (not wiped by refreshes)
    locked: false, // we hold the edit lock
    draftKey: null, // idempotency key of the feedback draft being sent
    busy: false, // a save or a send is under way
    epoch: 0, // how many times the editor was drawn (see refresh)
    timer: null,
    lockTimer: null,
  };

  // Times as the reviewers read them: in the business zone, with its abbreviation.
  function localTime() {
    const time = new Date().toLocaleTimeString("en-GB", { timeZone: boot.timezone, hour12: false });
    return `${time} ${boot.zoneAbbr}`;
  }

  // -- filters, list, cards -----------------------------------------------------------

  function filterQuery() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($("#filters"))) if (v) params.set(k, v);
    return params;
  }

  function renderCards(summary) {
    $("#card-total").textContent = summary.total;
    $("#card-incomplete").textContent = summary.incomplete;
    $("#card-complete").textContent = summary.complete;
    $("#card-feedback").textContent = summary.feedbackSent;
  }

  function renderToday(daily) {
    const rows = daily.drops.map((d) =>
      h("tr", {}, h("td", { text: d.project ?? "(no project)" }), h("td", { class: "num", text: d.count }))
    );
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: "2", class: "muted", text: "No drops yet today" })));
    $("#today-rows").replaceChildren(...rows);
    $("#today-total").textContent = daily.total;
  }

  function feedbackChip(d) {
    const f = d.feedback;
    if (f && (f.status === "pending" || f.status === "sending"))
      return h("span", { class: "chip pending", title: f.lastError || "", text: "Feedback pending" });
    if (f && f.status === "failed")
      return h("span", { class: "chip bad", title: f.lastError || "", text: "Feedback failed" });
    if (f && f.status === "unconfirmed")
      return h("span", { class: "chip warn", title: f.lastError || "", text: "Delivery unconfirmed" });
    if (d.feedbackSent) return h("span", { class: "chip good", text: "Feedback sent" });
    return null;
  }

  let lastList = "";

  function renderList(drops, pagination) {
    // Re-render only on change, and keep keyboard focus on the same drop when it does.
    const key = JSON.stringify([drops, pagination, state.openId]);
    if (key === lastList) return;
    lastList = key;
    const focused = document.activeElement && document.activeElement.closest("#drops li.drop");
    const focusedId = focused ? focused.dataset.id : null;
    const items = drops.map((d) => {
      const done = d.completedPhotos;
      return h(
        "li",
        { class: d.id === state.openId ? "drop open" : "drop", "data-id": d.id, "data-drop": d.dropNumber },
        h(
          "button",
          { type: "button", class: "drop-button", "aria-label": `Review ${d.dropNumber}`, onclick: () => openDrop(d.id) },
          h(
            "span",
            { class: "drop-line" },
            h("strong", { class: "drop-number", text: d.dropNumber }),
            d.resubmitted ? h("span", { class: "badge", text: "↻ Resubmitted" }) : null,
            h("span", { class: `progress ${done === 12 ? "full" : ""}`, text: `${done}/12` })
          ),
          h(
            "span",
            { class: "drop-meta" },
            h("span", { text: d.project ?? "(no project)" }),
            h("span", { text: d.userName }),
            h("time", { datetime: d.lastMessageDate || "", text: d.receivedLocal || "" })
          ),
          h(
            "span",
            { class: "drop-flags" },
            h("span", { class: `chip ${d.completed ? "good" : "warn"}`, text: d.completed ? "Complete" : "Incomplete" }),
            feedbackChip(d),
            d.lockedBy && d.lockedBy !== boot.user ? h("span", { class: "chip", text: `✎ ${d.lockedBy}` }) : null
          )
        )
      );
    });
    if (!items.length) items.push(h("li", { class: "muted", text: "No drops match the filters" }));
    if (pagination && pagination.total > drops.length && state.limit < 500) {
      const more = () => {
        state.limit = Math.min(500, state.limit + 100);
        refresh();
      };
      items.push(h("li", { class: "more" }, h("button", { type: "button", onclick: more }, `Show more (${drops.length} of ${pagination.total})`)));
    }
    $("#drops").replaceChildren(...items);
    if (focusedId) {
      const again = document.querySelector(`#drops li[data-id="${CSS.escape(focusedId)}"] button`);
      if (again) again.focus();
    }
    $("#list-count").textContent = pagination ? `(${pagination.total})` : "";
  }

  function setLive(text, bad = false) {
    const el = $("#live");
    el.textContent = text;
    el.classList.toggle("bad", bad);
  }

  const CHANGED_MEANWHILE = "Unsaved changes · the drop changed meanwhile: saving merges, or asks you";

  async function refresh() {
    // The editor may be re-drawn (by a save or a send) while this refresh waits for the
    // server; its answer is then older than the editor and must not re-open the drop.
    const epoch = state.epoch;
    try {
      const params = filterQuery();
      params.set("pageSize", String(state.limit));
      const [list, daily] = await Promise.all([
        api("GET", `/api/wa-monitor-drops?${params}`),
        api("GET", "/api/wa-monitor-daily-drops"),
      ]);
      state.drops = list.body.data;
      renderCards(list.body.summary);
      renderList(state.drops, list.body.meta.pagination);
      renderToday(daily.body.data);
      $("#today-date").textContent = `${daily.body.data.date} (${boot.zoneAbbr})`;
      const exportParams = filterQuery();
      $("#export").href = `/api/wa-monitor-drops.csv?${exportParams}`;
      setLive(`Live · updated ${localTime()}`);
      const fresh = state.openId ? state.drops.find((d) => d.id === state.openId) : null;
      const note = $("#save-note");
      if (fresh && state.dirty && note) {
        const changed = fresh.version !== state.open.version;
        if (changed) note.textContent = CHANGED_MEANWHILE;
        else if (note.textContent === CHANGED_MEANWHILE) note.textContent = "Unsaved changes";
      }
      if (fresh && !state.dirty && !state.drafting && !state.busy && state.epoch === epoch) {
        if (fresh.version !== state.open.version) await openDrop(state.openId, { keepFocus: true });
        else updateFeedbackStatus(fresh);
      }
    } catch (e) {
      if (e.status !== 401) setLive(`Not updated: ${e.message}`, true);
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, boot.pollMs);
  }

  // -- the editor ---------------------------------------------------------------------

  const editor = $("#editor");

  async function openDrop(id, { keepFocus = false } = {}) {
    if (state.dirty && id !== state.openId) {
      if (!window.confirm("Discard your unsaved changes to this drop?")) return;
      await releaseLock();
    }
    let detail;
    try {
      detail = (await api("GET", `/api/wa-monitor-drops/${id}`)).body.data;
    } catch (e) {
      setLive(`Could not open the drop: ${e.message}`, true);
      return;
    }
    if (id !== state.openId) state.draftKey = null;
    state.drafting = false;
    state.openId = id;
    state.open = detail.drop;
    state.dirty = false;
    state.epoch += 1;
    renderEditor(detail);
    for (const li of document.querySelectorAll("#drops .drop")) li.classList.toggle("open", li.dataset.id === id);
    if (!keepFocus) $("#editor-title").focus();
  }

  // Someone else holds a live (under five minutes old) edit lock on the drop.
  function lockedByOther(d) {
    return Boolean(d.lockedBy && d.lockedBy !== boot.user && Date.parse(d.lockedAt) + 300000 > Date.now());
  }

  function renderEditor(detail) {
    const d = detail.drop;
    const readOnly = !boot.canEdit || lockedByOther(d);
    const wrong = new Set(d.incorrectSteps);
    const steps = boot.steps.map(([col, label], i) => {
      const comment = d.incorrectComments[col] || "";
      return h(
        "li",
        { class: wrong.has(col) ? "step wrong" : "step", "data-step": col },
        h(
          "label",
          { class: "tick" },
          h("input", { type: "checkbox", name: col, checked: d[col], disabled: readOnly, onchange: onEdit }),
          h("span", { text: `${i + 1}. ${label}` })
        ),
        h(
          "label",
          { class: "incorrect" },
          h("input", { type: "checkbox", name: `wrong:${col}`, checked: wrong.has(col), disabled: readOnly, onchange: onWrong }),
          h("span", { text: "Incorrect" })
        ),
        h("input", {
          type: "text",
          class: "why",
          name: `why:${col}`,
          value: comment,
          placeholder: "What is wrong?",
          "aria-label": `Comment on ${label}`,
          hidden: !wrong.has(col),
          disabled: readOnly,
          oninput: onEdit,
        })
      );
    });
    const feedbackList = detail.feedback.map((f) =>
      h(
        "li",
        { class: `fb ${f.status}`, "data-outbox": f.id },
        h("span", { class: `chip ${FEEDBACK_CHIPS[f.status] || "pending"}`, text: f.status === "unconfirmed" ? "delivery unconfirmed: check the group" : f.status }),
        ` ${(f.sentAt || f.createdAt).replace("T", " ").slice(0, 16)} ${boot.zoneAbbr} by ${f.requestedBy || "?"}`,
        f.attempts ? ` · ${f.attempts} attempt(s)` : "",
        f.lastError && f.status !== "sent" ? h("span", { class: "reason", text: ` · ${f.lastError}` }) : null,
        // The bridge may have posted it: only the reviewer, looking at the group, can say.
        f.status === "unconfirmed" && !readOnly
          ? h(
              "span",
              { class: "fb-actions" },
              h("button", { type: "button", onclick: () => outboxAction(f.id, "send-again") }, "Send again"),
              h("button", { type: "button", onclick: () => outboxAction(f.id, "mark-sent") }, "Mark as sent")
            )
          : null
      )
    );
    const history = detail.edits.map((e) =>
      h("li", {}, h("strong", { text: e.actor }), ` ${e.action.replace(/_/g, " ")} · ${e.atLocal}`)
    );
    editor.replaceChildren(
      h(
        "div",
        { class: "editor-head" },
        h("h2", { id: "editor-title", tabindex: "-1", text: d.dropNumber }),
        d.resubmitted ? h("span", { class: "badge", text: "↻ Resubmitted" }) : null,
        h("button", { type: "button", class: "link close", onclick: closeEditor, "aria-label": "Close the drop" }, "✕ Close")
      ),
      h(
        "p",
        { class: "muted" },
        `${d.project ?? "(no project)"} · ${d.userName}${d.senderPhone ? ` (${d.senderPhone})` : ""} · received ${d.receivedLocal || "?"}`
      ),
      h("p", { id: "lock-note", class: "note", hidden: !lockedByOther(d), text: lockedByOther(d) ? `Being edited by ${d.lockedBy}` : "" }),
      h(
        "form",
        { id: "review", onsubmit: save },
        h("p", { class: "progress-line" }, h("strong", { id: "editor-progress", text: `${d.completedPhotos}/12` }), " steps ticked"),
        h("ul", { class: "steps" }, steps),
        h("label", { for: "comment", text: "Comment" }),
        h("textarea", { id: "comment", name: "comment", rows: "3", disabled: readOnly, oninput: onEdit }, d.comment || ""),
        readOnly
          ? h("p", { class: "muted", text: boot.canEdit ? "Read only while someone else edits it." : "Viewers cannot edit reviews." })
          : h(
              "div",
              { class: "actions" },
              h("button", { type: "submit", class: "primary", id: "save" }, "Save review"),
              h("span", { id: "save-note", class: "muted", "aria-live": "polite" })
            )
      ),
      h(
        "section",
        { class: "feedback", "aria-labelledby": "fb-title" },
        h("h3", { id: "fb-title", text: "Feedback to the WhatsApp group" }),
        readOnly ? null : h("button", { type: "button", id: "generate", onclick: generate }, "Generate feedback"),
        h("textarea", { id: "feedback-text", rows: "8", hidden: true, "aria-label": "Feedback message", disabled: readOnly, oninput: () => (state.drafting = true) }),
        readOnly ? null : h("button", { type: "button", id: "send", class: "primary", hidden: true, onclick: sendFeedback }, "Send to WhatsApp"),
        h("p", { id: "feedback-note", class: "note", "aria-live": "polite" }),
        h("ul", { id: "feedback-list", class: "feedback-list" }, feedbackList)
      ),
      h("details", { class: "history" }, h("summary", { text: `Edit history (${detail.edits.length})` }), h("ul", {}, history))
    );
    editor.hidden = false;
    document.body.classList.add("editing");
  }

  function updateFeedbackStatus(fresh) {
    state.open.feedback = fresh.feedback;
    const note = $("#feedback-note");
    const f = fresh.feedback;
    if (!note || !f || note.dataset.status === f.status) return;
    note.dataset.status = f.status;
    if (f.status === "sent") note.textContent = `Sent ${fresh.feedbackSentLocal || ""}`;
    else if (f.status === "failed") note.textContent = `Failed: ${f.lastError}`;
    else if (f.status === "unconfirmed") note.textContent = unconfirmedNote(f.lastError);
    else note.textContent = `Pending: ${f.lastError || "waiting for the bridge"} (retrying)`;
  }

  function currentProgress() {
    return boot.steps.filter(([col]) => $(`input[name="${col}"]`, editor).checked).length;
  }

  async function onEdit() {
    $("#editor-progress").textContent = `${currentProgress()}/12`;
    if (!state.dirty) {
      state.dirty = true;
      $("#save-note").textContent = "Unsaved changes";
      await takeLock();
    }
  }

  function onWrong(event) {
    const col = event.target.name.slice("wrong:".length);
    const li = event.target.closest(".step");
    const why = $(`input[name="why:${col}"]`, li);
    li.classList.toggle("wrong", event.target.checked);
    why.hidden = !event.target.checked;
    if (event.target.checked) {
      $(`input[name="${col}"]`, li).checked = false;
      why.focus();
    }
    onEdit();
  }

  async function takeLock() {
    try {
      const res = await api("POST", `/api/wa-monitor-drops/${state.openId}/lock`);
      adoptLockVersion(res.body.data.drop);
      state.locked = true;
      $("#lock-note").hidden = true;
      clearInterval(state.lockTimer);
      state.lockTimer = setInterval(() => {
        if (state.dirty)
          api("POST", `/api/wa-monitor-drops/${state.openId}/lock`)
            .then((res) => adoptLockVersion(res.body.data.drop))
            .catch(() => {});
      }, 120000);
    } catch (e) {
      const note = $("#lock-note");
      note.textContent = e.message;
      note.hidden = false;
    }
  }

  // Taking or refreshing the lock writes the drop (its version goes up by one): when
  // nothing else was written since the editor's copy, that copy is still current.
  function adoptLockVersion(drop) {
    if (state.open && drop && drop.id === state.open.id && drop.version === state.open.version + 1) {
      state.open.version = drop.version;
      state.open.lockedBy = drop.lockedBy;
      state.open.lockedAt = drop.lockedAt;
    }
  }

  async function releaseLock() {
    clearInterval(state.lockTimer);
    if (state.locked && state.openId) {
      state.locked = false;
      await api("POST", `/api/wa-monitor-drops/${state.openId}/unlock`).catch(() => {});
    }
  }

  // One step as the editor or a drop holds it, to compare two versions of a review.
  function stepOf(d, col) {
    const wrong = d.incorrectSteps.includes(col);
    return { ticked: Boolean(d[col]), wrong, why: wrong ? d.incorrectComments[col] || "" : "" };
  }

  function stepText(step) {
    if (step.wrong) return step.why ? `incorrect: ${step.why}` : "incorrect";
    return step.ticked ? "ticked" : "not ticked";
  }

  // The review as the editor shows it, in the drop's own shape.
  function edited() {
    const d = { incorrectSteps: [], incorrectComments: {}, comment: $("#comment").value };
    for (const [col] of boot.steps) {
      d[col] = $(`input[name="${col}"]`, editor).checked;
      if ($(`input[name="wrong:${col}"]`, editor).checked) {
        d.incorrectSteps.push(col);
        const why = $(`input[name="why:${col}"]`, editor).value.trim();
        if (why) d.incorrectComments[col] = why;
      }
    }
    return d;
  }

  // Only what the reviewer changed since the drop was opened: a save never writes back
  // what it did not change, so what others wrote meanwhile stays (the server merges).
  function collect() {
    const was = state.open;
    const now = edited();
    const body = {};
    for (const [col] of boot.steps) if (now[col] !== Boolean(was[col])) body[col] = now[col];
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const wasWhy = Object.fromEntries(was.incorrectSteps.map((c) => [c, was.incorrectComments[c]]).filter(([, v]) => v));
    if (!same(now.incorrectSteps, was.incorrectSteps) || !same(now.incorrectComments, wasWhy)) {
      body.incorrectSteps = now.incorrectSteps;
      body.incorrectComments = now.incorrectComments;
    }
    if (now.comment !== (was.comment || "")) body.comment = now.comment;
    return body;
  }

  async function save(event) {
    if (event) event.preventDefault();
    if (document.querySelector("dialog.conflict[open]")) return false;
    const changes = collect();
    if (!Object.keys(changes).length) {
      state.dirty = false;
      await releaseLock();
      $("#save-note").textContent = "Nothing changed";
      return true;
    }
    return submit(changes, state.open.version);
  }

  // Send an edit made on `version`; a conflict asks the reviewer which version to keep.
  async function submit(changes, version) {
    const note = $("#save-note");
    state.busy = true;
    try {
      const res = await api("PATCH", `/api/wa-monitor-drops/${state.openId}`, changes, { "If-Match": `"${version}"` });
      state.dirty = false;
      await releaseLock();
      await openDrop(state.openId, { keepFocus: true });
      const merged = (res.body.message || "").replace(/^Review saved;?\s*/, "");
      $("#save-note").textContent = merged ? `Saved · ${merged}` : "Saved";
      refresh();
      return true;
    } catch (e) {
      const details = e.details;
      if (e.status === 409 && details && details.current) {
        showConflict(changes, details);
        if (note) note.textContent = "Not saved: the drop changed meanwhile";
      } else if (note) note.textContent = `Not saved: ${e.message}`;
      return false;
    } finally {
      state.busy = false;
    }
  }

  // Both versions of what both changed, side by side: keep yours (sent again on the
  // current version), take the current one, or go back to editing.
  function showConflict(changes, details) {
    const current = details.current;
    const mine = edited();
    const parts = [];
    if (details.conflicts.includes("comment")) {
      parts.push(
        h(
          "section",
          { class: "conflict-field" },
          h("h3", { text: "Comment" }),
          h(
            "div",
            { class: "versions" },
            h(
              "label",
              { class: "version mine" },
              h("span", { class: "version-name", text: "Yours (you can edit it)" }),
              h("textarea", { id: "conflict-mine-comment", rows: "6" }, changes.comment ?? mine.comment)
            ),
            h(
              "div",
              { class: "version theirs" },
              h("span", { class: "version-name", text: `Now (version ${details.currentVersion})` }),
              h("pre", { id: "conflict-current-comment", text: current.comment || "(no comment)" })
            )
          )
        )
      );
    }
    if (details.conflicts.includes("steps")) {
      const rows = boot.steps
        .map(([col, label], i) => [`${i + 1}. ${label}`, stepText(stepOf(mine, col)), stepText(stepOf(current, col))])
        .filter(([, a, b]) => a !== b)
        .map(([label, a, b]) => h("tr", {}, h("th", { scope: "row", text: label }), h("td", { text: a }), h("td", { text: b })));
      parts.push(
        h(
          "section",
          { class: "conflict-field" },
          h("h3", { text: "Steps" }),
          h(
            "table",
            { class: "versions-table" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Step" }), h("th", { scope: "col", text: "Yours" }), h("th", { scope: "col", text: `Now (version ${details.currentVersion})` }))),
            h("tbody", {}, rows)
          )
        )
      );
    }
    const dialog = h(
      "dialog",
      { class: "conflict", id: "conflict", "aria-labelledby": "conflict-title", "aria-describedby": "conflict-why" },
      h("h2", { id: "conflict-title", text: `${current.dropNumber} changed while you were editing it` }),
      h("p", { id: "conflict-why", text: "Someone saved it, or the installer posted it again, since you opened it. Nothing was saved: choose which version to keep." }),
      parts,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "primary", id: "conflict-keep-mine", onclick: keepMine }, "Keep mine"),
        h("button", { type: "button", id: "conflict-take-theirs", onclick: takeTheirs }, "Use the current version"),
        h("button", { type: "button", class: "link", id: "conflict-back", onclick: () => dialog.close() }, "Back to editing")
      )
    );
    async function keepMine() {
      const again = { ...changes };
      const text = $("#conflict-mine-comment", dialog);
      if (text) again.comment = text.value;
      dialog.close();
      if (text) $("#comment").value = text.value;
      await submit(again, details.currentVersion);
    }
    async function takeTheirs() {
      dialog.close();
      state.dirty = false;
      await releaseLock();
      await openDrop(state.openId, { keepFocus: true });
      $("#save-note").textContent = "Showing the current version; your changes were discarded";
    }
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }

  async function generate() {
    if (state.dirty && !(await save())) return;
    try {
      const draft = (await api("GET", `/api/wa-monitor-drops/${state.openId}/feedback`)).body.data;
      const text = $("#feedback-text");
      text.value = draft.message;
      text.rows = Math.min(24, draft.message.split("\n").length + 3);
      text.hidden = false;
      $("#send").hidden = false;
      state.draftKey = null;
      state.drafting = true;
      $("#feedback-note").textContent = draft.recipient ? "" : "No WhatsApp group is configured for this project.";
      text.focus();
    } catch (e) {
      $("#feedback-note").textContent = e.message;
    }
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return `k${Date.now()}${Math.random().toString(16).slice(2)}`;
  }

  const FEEDBACK_CHIPS = { sent: "good", failed: "bad", unconfirmed: "warn" };

  function unconfirmedNote(reason) {
    return `Delivery unconfirmed: check the group, then send again or mark as sent (${reason || "no answer from the bridge"})`;
  }

  function sentNote(data) {
    if (data.status === "sent") return `Sent to ${data.group || "the group"} · ${localTime()}`;
    if (data.status === "unconfirmed") return unconfirmedNote(data.lastError);
    if (data.status === "failed") return `Failed: ${data.lastError}`;
    return `Queued: ${data.lastError || "the bridge is busy"} (retrying)`;
  }

  // After a send or an outbox action: the editor shows the outbox as it is now.
  async function showFeedbackOutcome(status) {
    if (!state.dirty) {
      const text = $("#feedback-note").textContent;
      await openDrop(state.openId, { keepFocus: true });
      $("#feedback-note").textContent = text;
      $("#feedback-note").dataset.status = status;
    }
    state.busy = false;
    refresh();
  }

  async function sendFeedback() {
    const text = $("#feedback-text");
    const note = $("#feedback-note");
    const button = $("#send");
    // One key per message text: a retry of the same send never posts twice.
    if (!state.draftKey || state.draftKey.text !== text.value) state.draftKey = { key: newKey(), text: text.value };
    let status = "";
    state.busy = true;
    button.disabled = true;
    note.textContent = "Sending…";
    const body = { dropId: state.openId, dropNumber: state.open.dropNumber, project: state.open.project, message: text.value };
    try {
      let res;
      try {
        res = await api("POST", "/api/wa-monitor-send-feedback", body, { "Idempotency-Key": state.draftKey.key });
      } catch (e) {
        // The same text went to the group moments ago (another tab, another reviewer).
        const twin = e.status === 409 && e.details && e.details.outboxId;
        if (!twin || !window.confirm(`${e.message.split(";")[0]}.\n\nSend it to the group again?`)) throw e;
        state.draftKey = { key: newKey(), text: text.value };
        res = await api("POST", "/api/wa-monitor-send-feedback", { ...body, resend: true }, { "Idempotency-Key": state.draftKey.key });
      }
      status = res.body.data.status;
      note.textContent = sentNote(res.body.data);
    } catch (e) {
      note.textContent = e.message;
    } finally {
      button.disabled = false;
    }
    await showFeedbackOutcome(status);
  }

  async function outboxAction(id, action) {
    const note = $("#feedback-note");
    if (action === "send-again" && !window.confirm("Send this feedback to the group again? If the first one did arrive, the group gets it twice.")) return;
    state.busy = true;
    let status = "";
    try {
      const f = (await api("POST", `/api/wa-monitor-feedback-outbox/${id}/${action}`)).body.data;
      status = f.status;
      note.textContent = action === "mark-sent" ? `Marked as sent by ${boot.user}` : sentNote(f);
    } catch (e) {
      note.textContent = e.message;
    }
    await showFeedbackOutcome(status);
  }

  async function closeEditor() {
    if (state.dirty && !window.confirm("Discard your unsaved changes to this drop?")) return;
    await releaseLock();
    const id = state.openId;
    state.openId = null;
    state.open = null;
    state.dirty = false;
    editor.hidden = true;
    editor.replaceChildren();
    document.body.classList.remove("editing");
    const li = id ? document.querySelector(`#drops .drop[data-id="${CSS.escape(id)}"] button`) : null;
    if (li) li.focus();
    for (const el of document.querySelectorAll("#drops .drop.open")) el.classList.remove("open");
  }

  // -- wiring -------------------------------------------------------------------------

  let filterTimer = null;
  $("#filters").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(refresh, 250);
  });
  $("#filters").addEventListener("reset", () => setTimeout(refresh, 0));
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    refresh();
  });
  document.addEventListener("keydown", (e) => {
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    if (e.key === "Escape" && state.openId) closeEditor();
    if ((e.ctrlKey || e.metaKey) && e.key === "s" && state.openId && boot.canEdit) {
      e.preventDefault();
      save();
    }
  });
  window.addEventListener("beforeunload", (e) => {
    if (state.dirty) e.preventDefault();
  });
  refresh().then(schedule);
})();
