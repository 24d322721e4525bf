// WA Monitor admins' health panel: fills itself from /api/wa-monitor-health-panel and
// asks again every few seconds while the tab is visible.
"use strict";

(() => {
  const { boot, $, h } = window.WaMonitor;
  const URL = "/api/wa-monitor-health-panel";
  const LEVEL = { ok: ["good", "All good"], warn: ["warn", "Needs a look"], fail: ["bad", "Failing"] };
  const STATE = {
    running: "good",
    fresh: "good",
    quiet: "pending",
    stale: "bad",
    stopped: "bad",
    unhealthy: "bad",
    unknown: "bad",
    unused: "pending",
  };
  let timer = null;
  let busy = false;

  // `2026-03-02 14:05 SAST (12 min ago)`: the server gives both, in the business zone.
  function when(moment, none = "never") {
    if (!moment) return none;
    return `${moment.local} (${moment.age} ago)`;
  }

  function chip(text, kind) {
    return h("span", { class: `chip ${kind || ""}`, text });
  }

  function cell(label, ...content) {
    return h("td", { "data-label": label }, ...content);
  }

  function fill(table, rows, empty, columns) {
    const body = $("tbody", table);
    body.replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: String(columns), class: "muted", text: empty }))])
    );
  }

  function renderWarnings(warnings) {
    const list = $("#health-warnings");
    list.replaceChildren(
      ...(warnings.length
        ? warnings.map((w) =>
            h(
              "li",
              { class: `warning ${w.level}`, "data-source": w.source },
              chip(w.level === "fail" ? "Failing" : "Warning", w.level === "fail" ? "bad" : "warn"),
              " ",
              w.message
            )
          )
        : [h("li", { class: "muted", text: "Nothing needs attention." })])
    );
  }

  function renderGroups(groups) {
    const rows = groups.map((g) =>
      h(
        "tr",
        { "data-project": g.project, class: g.stale ? "stale" : "" },
        h("th", { scope: "row", "data-label": "Project" }, g.project, h("div", { class: "muted small", text: g.description })),
        cell("Last message", when(g.lastMessage, "none seen")),
        cell("Last drop", g.lastDrop ? `${g.lastDrop.dropNumber}, ${when(g.lastDrop)}` : "none in 30 days"),
        cell("State", g.stale ? chip("Stale", "bad") : chip("OK", "good"), g.problem ? h("div", { class: "small", text: g.problem }) : null)
      )
    );
    fill($("#health-groups"), rows, "No project is monitored.", 4);
  }

  function renderSources(sources) {
    const rows = sources.map((s) =>
      h(
        "tr",
        { "data-gateway": s.gateway, class: s.status === "ok" ? "" : "stale" },
        h("th", { scope: "row", "data-label": "Source" }, s.label, h("div", { class: "muted small", text: s.gateway })),
        cell("Groups", s.groups.length ? s.groups.map((g) => g.project).join(", ") : "none"),
        cell("Last message", when(s.lastMessage, "none seen")),
        cell(
          "Session",
          ...(s.sessions.length
            ? s.sessions.map((x) => h("div", {}, chip(x.status, x.working ? "good" : "bad"), ` ${x.session}, since ${when(x.changedAt)}`))
            : [s.connection ? chip(s.connection, s.connection === "connected" ? "good" : "bad") : h("span", { class: "muted", text: "not reported" })])
        ),
        cell(
          "State",
          chip(LEVEL[s.status][1], LEVEL[s.status][0]),
          ...s.warnings.map((w) => h("div", { class: "small", text: w }))
        )
      )
    );
    fill($("#health-sources"), rows, "No source is in use.", 5);
  }

  function renderMonitors(monitors, bridge) {
    const rows = monitors.map((m) =>
      h(
        "tr",
        { "data-instance": m.instance, class: m.current ? "current" : "" },
        h("th", { scope: "row", "data-label": "Instance" }, m.instance, m.current ? h("span", { class: "muted small", text: " (this dashboard's)" }) : null),
        cell("Host", m.host || "?"),
        cell("PID", m.pid === null ? "?" : String(m.pid)),
        cell("Last beat", when(m.lastBeat)),
        cell("Last scan", when(m.lastScan, "none yet")),
        cell("State", chip(m.status, STATE[m.status]), h("div", { class: "small muted", text: m.detail }))
      )
    );
    fill($("#health-monitors"), rows, "No monitor has recorded a heartbeat in this database.", 6);
    const from = bridge.source ? ` (from the ${bridge.source === "heartbeat" ? "monitor's heartbeat" : "bridge store on this host"})` : "";
    $("#health-bridge").replaceChildren(
      h("strong", { text: "Bridge store: " }),
      chip(bridge.status, STATE[bridge.status]),
      ` ${bridge.changedAt ? `changed ${when(bridge.changedAt)}` : bridge.detail}${from}`
    );
  }

  function renderFeedback(f) {
    $("#health-feedback-counts").textContent =
      `${f.pending} pending, ${f.sending} sending, ${f.failed} failed, ${f.unconfirmed} unconfirmed`;
    const rows = f.entries.map((e) =>
      h(
        "tr",
        { "data-outbox": String(e.id) },
        h("th", { scope: "row", "data-label": "Drop" }, h("a", { href: `/wa-monitor?drop=${encodeURIComponent(e.dropNumber)}`, text: e.dropNumber })),
        cell("Project", e.project || "?"),
        cell("State", chip(e.status, e.status === "failed" ? "bad" : "warn")),
        cell("Requested", `${when(e.requestedAt)}${e.requestedBy ? ` by ${e.requestedBy}` : ""}`),
        cell("Attempts", String(e.attempts)),
        cell("Last error", e.lastError || "")
      )
    );
    fill($("#health-feedback"), rows, "No feedback waits for a person.", 6);
  }

  function renderMedia(m) {
    const worker = m.fetching === false ? "; the monitor does not fetch photos" : "";
    const waiting = m.oldestPending ? `${m.pending} waiting, the oldest posted ${when(m.oldestPending)}` : "None waiting";
    $("#health-media-counts").textContent =
      `${waiting}; ${m.failed} failed; ${m.unlinked} of no drop (not fetched)${worker}`;
    const rows = m.failures.map((f) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", "data-label": "Drop", text: f.dropNumber || "none" }),
        cell("Project", f.project || "?"),
        cell("File", f.filename || ""),
        cell("Posted", when(f.postedAt)),
        cell("Attempts", String(f.attempts)),
        cell("Last error", f.lastError || "")
      )
    );
    fill($("#health-media"), rows, "No photo failed.", 6);
  }

  function renderReports(reports) {
    $("#health-reports-panel").hidden = reports.length === 0;
    const rows = reports.map((r) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", "data-label": "Report", text: r.report }),
        cell("Period", r.period),
        cell("To", r.destination),
        cell("Claimed", when(r.at)),
        cell("Attempts", String(r.attempts)),
        cell("Last error", r.lastError || "")
      )
    );
    fill($("#health-reports"), rows, "", 6);
  }

  function renderAlerts(alerts) {
    $("#health-alerts-panel").hidden = alerts.length === 0;
    const rows = alerts.map((a) =>
      h(
        "tr",
        { "data-alert": a.alert },
        h("th", { scope: "row", "data-label": "Alert", text: a.alert }),
        cell("To", a.channel),
        cell("Since", when(a.since, "?")),
        cell("Sent", a.sentAt ? when(a.sentAt) : chip("not sent", "bad")),
        cell("Message", a.message || ""),
        cell("Last error", a.lastError || "")
      )
    );
    fill($("#health-alerts"), rows, "", 6);
  }

  function render(data) {
    const [kind, text] = LEVEL[data.status];
    const overall = $("#health-overall");
    overall.className = `chip ${kind}`;
    overall.textContent = text;
    $("#health-updated").textContent = `Updated ${data.generatedLocal}; refreshes every ${Math.round(data.refreshSeconds)} s.`;
    renderWarnings(data.warnings);
    renderSources(data.sources);
    renderGroups(data.groups);
    renderMonitors(data.monitors, data.bridge);
    renderFeedback(data.feedback);
    renderMedia(data.media);
    renderReports(data.reports);
    renderAlerts(data.alerts);
  }

  async function load() {
    if (busy) return;
    busy = true;
    const status = $("#health-status");
    try {
      const { body } = await window.WaMonitor.api("GET", URL);
      render(body.data);
      status.textContent = "";
      status.dataset.kind = "";
    } catch (e) {
      // The last figures stay on screen; the line says they are not current.
      status.textContent = `Could not refresh: ${e.message}`;
      status.dataset.kind = "bad";
    } finally {
      busy = false;
    }
  }

  function schedule() {
    clearInterval(timer);
    timer = document.hidden ? null : setInterval(load, boot.refreshMs);
  }

  $("#health-refresh").addEventListener("click", load);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) load();
    schedule();
  });
  load();
  schedule();
})();
