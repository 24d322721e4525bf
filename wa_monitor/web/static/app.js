// WA Monitor reviewers' page: polls the JSON API, never overwrites unsaved edits.
"use strict";

// The photos of the open drop: a gallery per round, the large view, the photo beside each
// step, the serials read from the photos, the installer's messages, the keys' help. The
// editor below creates it once, with what it needs of the review (`ctx`).

window.WaMonitor.photos = (ctx) => {
  const { boot, $, h, api } = window.WaMonitor;
  const STEP_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "="];
  const KEY_NAMES = STEP_KEYS.map((k) => (k === "-" ? "−" : k));
  // The GPON serial printed on an ONT: the vendor's four letters, then eight hex digits.
  const ONT_SERIAL = /^[A-Z]{4}[0-9A-F]{8}$/;
  const ONT_STEP = "step_08_ont_barcode";
  const UPS_STEP = "step_09_ups_serial";
  const SERIALS = {
    [ONT_STEP]: { field: "ontSerialScanned", name: "ONT serial" },
    [UPS_STEP]: { field: "upsSerialScanned", name: "UPS serial" },
  };
  const STATUS_TEXT = {
    pending: "Fetching from WhatsApp…",
    failed: "Could not be fetched",
    unavailable: "No longer on WhatsApp",
  };
  const HINT_NAMES = { blurred: "Blurred", dark: "Too dark", old: "Taken long before" };

  const st = {
    dropId: null,
    drop: null,
    photos: null, // null: not loaded yet, or the server would not say (see error)
    thread: [],
    error: "",
    key: "", // the last photos answer drawn: a poll redraws only on change
    index: -1, // the photo in the large view
    zoom: 1,
    fitWidth: 0,
    queue: Promise.resolve(), // decisions go to the server one after the other, in order
    pending: 0, // decisions not answered yet: a poll must not undo them on the screen
    inflight: new Map(), // photo id → its decisions not answered yet
  };

  const label = (col) => (boot.steps.find(([c]) => c === col) || [col, col])[1];
  const stepNo = (col) => boot.steps.findIndex(([c]) => c === col) + 1;
  const stepName = (col) => `${stepNo(col)}. ${label(col)}`;
  const roundName = (r) => (r === null || r === undefined ? "Not in a round" : r === 0 ? "First submission" : `Resubmission ${r}`);

  // Times as the rest of the page shows them: the business zone, with its abbreviation.
  function when(iso, { date = false } = {}) {
    if (!iso) return "";
    const t = new Date(iso);
    const opts = { timeZone: boot.timezone, hour: "2-digit", minute: "2-digit", hour12: false };
    const time = t.toLocaleTimeString("en-GB", opts);
    if (!date) return time;
    const day = t.toLocaleDateString("en-CA", { timeZone: boot.timezone });
    return `${day} ${time} ${boot.zoneAbbr}`;
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  function countLine(n) {
    return `${plural(n, "photo", "photos")} for 12 steps`;
  }

  // A reviewer's verdict on a hint is the server's (for everyone): a dismissed hint
  // leaves the tile and is shown struck through in the large view, with who dismissed it.
  const openHints = (p) => (p.hints || []).filter((x) => x.state !== "dismissed");
  const hintName = (x) => HINT_NAMES[x.kind] || x.kind;

  // The photo shown for each step: the newest one assigned to it (a resubmission's wins).
  function byStep() {
    if (!st.photos) return { ...((st.drop && st.drop.photosByStep) || {}) };
    const map = {};
    for (const p of st.photos) if (p.step) map[p.step] = p.id;
    return map;
  }

  const photoById = (id) => (st.photos || []).find((p) => p.id === id) || null;
  const isImage = (p) => !p.mediaType || p.mediaType === "image";

  // -- loading ------------------------------------------------------------------------

  // The drop's photos and thread, read along with the drop itself (see openDrop).
  async function load(dropId) {
    const again = dropId === st.dropId;
    st.dropId = dropId;
    if (!again) {
      st.photos = null;
      st.thread = [];
      st.key = "";
    }
    const [photos, thread] = await Promise.allSettled([
      api("GET", `/api/wa-monitor-drops/${dropId}/photos`),
      api("GET", `/api/wa-monitor-drops/${dropId}/thread`),
    ]);
    if (dropId !== st.dropId) return;
    if (thread.status === "fulfilled") st.thread = thread.value.body.data;
    if (again && st.pending) return; // the answers to come say what the photos are now
    st.photos = photos.status === "fulfilled" ? photos.value.body.data : null;
    st.error = photos.status === "fulfilled" ? "" : `Photos not shown: ${photos.reason.message}`;
    st.key = JSON.stringify(st.photos);
  }

  // A poll while the drop is open: photos fetched, analysed or moved meanwhile appear.
  async function poll() {
    const dropId = st.dropId;
    if (!dropId || st.pending) return;
    try {
      const res = await api("GET", `/api/wa-monitor-drops/${dropId}/photos`);
      const key = JSON.stringify(res.body.data);
      if (dropId !== st.dropId || st.pending || key === st.key) return;
      st.photos = res.body.data;
      st.key = key;
      st.error = "";
      redraw();
    } catch (_e) {
      // the next poll tries again; the page's live line says when the server is away
    }
  }

  function forget() {
    st.dropId = null;
    st.drop = null;
    st.photos = null;
    st.thread = [];
    const box = $("dialog.lightbox");
    if (box) box.close();
  }

  // -- the gallery --------------------------------------------------------------------

  function tileBody(p) {
    if (p.status === "available" && p.thumbUrl)
      return h("img", { class: "thumb", src: p.thumbUrl, alt: p.caption || `Photo posted ${when(p.postedAt)}`, loading: "lazy", width: "160", height: "160" });
    if (p.status === "available") return h("span", { class: "thumb file", text: p.mediaType === "video" ? "▶ Video" : "📄 Document" });
    return h("span", { class: `thumb placeholder ${p.status}`, text: STATUS_TEXT[p.status] || p.status });
  }

  function flagChips(p) {
    const chips = [];
    if (p.duplicateOf) chips.push(h("span", { class: "chip bad", title: duplicateText(p), text: "Re-used" }));
    for (const x of openHints(p)) chips.push(h("span", { class: "chip warn", title: x.state === "confirmed" ? `${x.message} (confirmed by ${x.by})` : x.message, text: hintName(x) }));
    if ((p.barcodes || []).length) chips.push(h("span", { class: "chip", title: p.barcodes.map((b) => b.text).join(", "), text: "▥ Barcode" }));
    return chips;
  }

  function duplicateText(p) {
    const d = p.duplicateOf;
    return `Also posted for ${d.dropNumber || "another drop"} on ${when(d.postedAt, { date: true })}`;
  }

  function tile(p, i) {
    const step = p.step ? stepNo(p.step) : null;
    const what = [
      `Photo ${i + 1} of ${st.photos.length}`,
      when(p.postedAt),
      p.step ? `step ${stepName(p.step)}` : "no step",
      p.status !== "available" ? STATUS_TEXT[p.status] : null,
      p.duplicateOf ? "re-used" : null,
    ].filter(Boolean);
    return h(
      "li",
      { class: `tile ${p.status}${p.duplicateOf ? " reused" : ""}`, "data-photo": p.id },
      h(
        "button",
        { type: "button", class: "tile-open", "aria-label": what.join(", "), onclick: () => openLarge(i) },
        tileBody(p),
        h("span", { class: "tile-line" }, h("time", { datetime: p.postedAt, text: when(p.postedAt) }), step ? h("span", { class: "tile-step", text: `Step ${step}` }) : null)
      ),
      h("span", { class: "tile-flags" }, flagChips(p)),
      p.status === "available" && !isImage(p) && p.url ? h("a", { class: "download", href: p.url, download: "" }, "Download") : null,
      p.status !== "available" && p.lastError ? h("span", { class: "reason", title: p.lastError, text: p.lastError }) : null
    );
  }

  function gallery() {
    const n = st.photos ? st.photos.length : (st.drop && st.drop.photoCount) || 0;
    const steps = Object.keys(byStep()).length;
    const head = h(
      "div",
      { class: "gallery-head" },
      h("h3", { id: "photos-title", text: "Photos" }),
      h("span", { id: "photo-count", class: "muted", text: `${countLine(n)} · ${plural(steps, "step has", "steps have")} a photo` })
    );
    if (!st.photos) return [head, h("p", { class: "muted", text: st.error || "Loading photos…" })];
    if (!st.photos.length) return [head, h("p", { class: "muted", text: "No photos linked to this drop yet." })];
    const rounds = new Map();
    st.photos.forEach((p, i) => {
      if (!rounds.has(p.round)) rounds.set(p.round, []);
      rounds.get(p.round).push(tile(p, i));
    });
    const sections = [...rounds].map(([r, tiles]) =>
      h("section", { class: "round", "data-round": r ?? "" }, h("h4", { text: `${roundName(r)} · ${plural(tiles.length, "photo", "photos")}` }), h("ol", { class: "tiles" }, tiles))
    );
    return [head, ...sections];
  }

  function thread() {
    const items = st.thread.map((m) =>
      h(
        "li",
        {},
        h("time", { datetime: m.postedAt, text: when(m.postedAt, { date: true }) }),
        h("span", { class: "who", text: ` ${m.senderName || m.sender}` }),
        m.round !== null && m.round !== undefined ? h("span", { class: "chip", text: roundName(m.round) }) : null,
        h("p", { class: "text", text: m.text || "" })
      )
    );
    return h(
      "details",
      { class: "thread", id: "thread" },
      h("summary", { text: `Installer's messages (${st.thread.length})` }),
      items.length ? h("ol", {}, items) : h("p", { class: "muted", text: "No text messages around this drop." })
    );
  }

  // The photos part of the editor, filled in by redraw().
  function section() {
    return h("section", { class: "photos", id: "photos", "aria-labelledby": "photos-title" });
  }

  // -- beside each step ---------------------------------------------------------------

  function stepSlot(col) {
    return h("span", { class: "step-photo", "data-step-photo": col });
  }

  function drawStep(col) {
    const slot = document.querySelector(`[data-step-photo="${col}"]`);
    if (!slot) return;
    const id = byStep()[col];
    const p = photoById(id);
    const li = slot.closest(".step");
    li.classList.toggle("no-photo", !id);
    if (SERIALS[col]) drawSerial(col, li);
    if (!id) {
      slot.replaceChildren(h("span", { class: "none", title: "No photo assigned to this step", text: "No photo" }));
      return;
    }
    const i = st.photos ? st.photos.indexOf(p) : -1;
    const inner = p && p.thumbUrl ? h("img", { src: p.thumbUrl, alt: `Photo for ${label(col)}` }) : h("span", { class: "none", text: p ? STATUS_TEXT[p.status] || "Photo" : "Photo" });
    slot.replaceChildren(
      i >= 0 ? h("button", { type: "button", class: "step-thumb", "aria-label": `Enlarge the photo for ${label(col)}`, onclick: () => openLarge(i) }, inner) : inner
    );
  }

  // What the photos' barcodes say the step's serial is (newest photo first).
  function serialFromPhotos(col) {
    const photos = (st.photos || []).slice().reverse();
    const texts = (p) => (p.barcodes || []).map((b) => b.text);
    if (col === ONT_STEP) {
      const ranked = [...photos.filter((p) => p.step === ONT_STEP), ...photos];
      for (const p of ranked) for (const t of texts(p)) if (ONT_SERIAL.test(t)) return t;
      return null;
    }
    const ups = photos.filter((p) => p.step === UPS_STEP || /\bups\b/i.test(p.caption || ""));
    for (const p of ups) for (const t of texts(p)) if (!ONT_SERIAL.test(t)) return t;
    return null;
  }

  function drawSerial(col, li) {
    const { field, name } = SERIALS[col];
    let line = $(".serial", li);
    if (!line) {
      line = h("div", { class: "serial", "data-serial": field });
      li.append(line);
    }
    const stored = ctx.serial(field);
    const read = serialFromPhotos(col);
    const parts = [];
    if (stored) parts.push(h("span", {}, `${name}: `, h("code", { class: "serial-value", text: stored })));
    if (read && read !== stored) {
      parts.push(
        h("span", { class: "suggestion" }, `${stored ? "The photo shows" : `${name} read from the photo:`} `, h("code", { text: read })),
        boot.canEdit ? h("button", { type: "button", class: "accept", "aria-label": `Accept ${name} ${read}`, onclick: () => ctx.acceptSerial(field, read) }, "Accept") : null
      );
    }
    const conflicts = ((st.drop && st.drop.serialConflicts) || []).filter((c) => c.field === field);
    for (const c of conflicts) parts.push(h("span", { class: "chip bad conflict", text: `⚠ Also used on ${c.dropNumber}` }));
    line.replaceChildren(...parts);
    line.hidden = !parts.length;
  }

  // -- the large view -----------------------------------------------------------------

  function lightbox() {
    let box = $("dialog.lightbox");
    if (box) return box;
    const options = [h("option", { value: "", text: "No step" }), ...boot.steps.map(([col]) => h("option", { value: col, text: stepName(col) }))];
    box = h(
      "dialog",
      { class: "lightbox", "aria-label": "Photo", onkeydown: onLargeKey, onclose: () => afterClose() },
      h(
        "div",
        { class: "lb-bar" },
        h("span", { class: "lb-where", id: "lb-where", "aria-live": "polite" }),
        h(
          "span",
          { class: "lb-tools" },
          h("button", { type: "button", id: "lb-zoom-out", "aria-label": "Zoom out", onclick: () => zoomBy(1 / 1.5) }, "−"),
          h("button", { type: "button", id: "lb-fit", "aria-label": "Fit to the screen", onclick: () => setZoom(1) }, "Fit"),
          h("button", { type: "button", id: "lb-zoom-in", "aria-label": "Zoom in", onclick: () => zoomBy(1.5) }, "+"),
          h("button", { type: "button", id: "lb-menu-button", "aria-expanded": "false", "aria-controls": "lb-menu", onclick: () => toggleMenu() }, "Move…"),
          h("button", { type: "button", "aria-label": "Keyboard keys", onclick: () => help() }, "?"),
          h("button", { type: "button", id: "lb-close", "aria-label": "Close the large view", onclick: () => box.close() }, "✕")
        )
      ),
      h(
        "div",
        { class: "lb-menu", id: "lb-menu", hidden: true },
        h("label", {}, "Drop ", h("input", { id: "lb-move-drop", type: "text", autocomplete: "off", size: "12", "aria-label": "Move to drop number" })),
        h("label", {}, "Round ", h("select", { id: "lb-move-round", "aria-label": "Move to round" })),
        h("button", { type: "button", id: "lb-move", onclick: () => move() }, "Move"),
        h("button", { type: "button", id: "lb-detach", class: "link", onclick: () => detach() }, "Detach from this drop")
      ),
      h(
        "div",
        { class: "lb-stage", id: "lb-stage", onpointerdown: swipeStart, onpointerup: swipeEnd },
        h("button", { type: "button", class: "lb-prev", "aria-label": "Previous photo", onclick: () => go(-1) }, "‹"),
        h("div", { class: "lb-picture", id: "lb-picture" }),
        h("button", { type: "button", class: "lb-next", "aria-label": "Next photo", onclick: () => go(1) }, "›")
      ),
      h(
        "div",
        { class: "lb-info" },
        h(
          "div",
          { class: "lb-step" },
          h("label", { for: "lb-step" }, "Step "),
          h("select", { id: "lb-step", disabled: !boot.canEdit, onchange: (e) => assign(e.target.value || null) }, options),
          h("button", { type: "button", id: "lb-tick", "aria-pressed": "false", disabled: !boot.canEdit, onclick: () => tick() }, "Tick step"),
          h("span", { class: "lb-keys muted", text: "Keys 1–9 0 − = pick the step, t ticks it, ? all keys" })
        ),
        h("div", { class: "lb-flags", id: "lb-flags" }),
        h("p", { class: "lb-caption", id: "lb-caption" }),
        h("p", { class: "lb-note", id: "lb-note", "aria-live": "polite" })
      )
    );
    document.body.append(box);
    return box;
  }

  function openLarge(i) {
    if (!st.photos || !st.photos.length) return;
    const box = lightbox();
    st.index = Math.max(0, Math.min(i, st.photos.length - 1));
    $("#lb-note", box).textContent = "";
    drawLarge();
    if (!box.open) box.showModal();
    $("#lb-step", box).focus();
  }

  function afterClose() {
    toggleMenu(false);
    const p = st.photos && st.photos[st.index];
    const back = p && document.querySelector(`#photos li[data-photo="${p.id}"] .tile-open`);
    if (back) back.focus();
  }

  function drawLarge() {
    const box = $("dialog.lightbox");
    if (!box || !st.photos) return;
    if (!st.photos.length) {
      box.close();
      return;
    }
    st.index = Math.max(0, Math.min(st.index, st.photos.length - 1));
    const p = st.photos[st.index];
    box.dataset.photo = p.id;
    $("#lb-where", box).textContent = `${st.index + 1} / ${st.photos.length} · ${roundName(p.round)} · ${when(p.postedAt, { date: true })}`;
    const picture = $("#lb-picture", box);
    st.zoom = 1;
    st.fitWidth = 0;
    picture.classList.remove("zoomed");
    if (p.status === "available" && isImage(p) && p.url) {
      // Not draggable: a drag would swallow the swipe to the next photo.
      const img = h("img", { id: "lb-image", src: p.url, alt: p.caption || `Photo posted ${when(p.postedAt)}`, draggable: "false", onclick: onImageClick, ondragstart: (e) => e.preventDefault() });
      picture.replaceChildren(img);
    } else if (p.status === "available") {
      picture.replaceChildren(
        h(
          "div",
          { class: "lb-file" },
          p.thumbUrl ? h("img", { src: p.thumbUrl, alt: "Poster frame" }) : null,
          h("p", { text: p.mediaType === "video" ? "A video" : "A document" }),
          p.url ? h("a", { class: "button", href: p.url, download: "" }, "Download") : null
        )
      );
    } else {
      picture.replaceChildren(h("div", { class: `lb-file ${p.status}` }, h("p", { class: "status", text: STATUS_TEXT[p.status] || p.status }), p.lastError ? h("p", { class: "reason", text: p.lastError }) : null));
    }
    $("#lb-step", box).value = p.step || "";
    drawTick();
    const flags = [];
    if (p.duplicateOf)
      flags.push(
        h(
          "p",
          { class: "flag bad", id: "lb-duplicate" },
          `⚠ ${duplicateText(p)} `,
          p.duplicateOf.dropId ? h("button", { type: "button", class: "link", onclick: () => openOther(p.duplicateOf.dropId) }, `Open ${p.duplicateOf.dropNumber}`) : null
        )
      );
    for (const x of p.hints || []) flags.push(hintFlag(p, x));
    for (const b of p.barcodes || []) flags.push(h("p", { class: "flag", "data-barcode": b.text }, `▥ ${b.format}: `, h("code", { text: b.text })));
    $("#lb-flags", box).replaceChildren(...flags);
    $("#lb-caption", box).textContent = [p.sender, p.caption].filter(Boolean).join(" · ");
    $(".lb-prev", box).disabled = st.index === 0;
    $(".lb-next", box).disabled = st.index === st.photos.length - 1;
    const menu = $("#lb-menu", box);
    if (!menu.hidden) fillMenu(p);
    $("#lb-menu-button", box).hidden = !boot.canEdit;
  }

  // A hint in the large view: Confirm / Dismiss it, or the verdict, who gave it, and Undo.
  function hintFlag(p, x) {
    const name = hintName(x);
    const button = (text, label, state) => (boot.canEdit ? h("button", { type: "button", class: "link", "aria-label": `${label}: ${name}`, onclick: () => judge(p, x.kind, state) }, text) : null);
    const what = h(x.state === "dismissed" ? "s" : "span", { class: "hint-text", text: `${name}: ${x.message}` });
    const attrs = { class: `flag hint ${x.state === "dismissed" ? "dismissed" : "warn"}`, "data-hint": x.kind, "data-state": x.state || "open" };
    if (!x.state) return h("p", attrs, what, " ", button("Confirm", "Confirm", "confirmed"), " ", button("Dismiss", "Dismiss", "dismissed"));
    const by = h("span", { class: "hint-by muted", title: when(x.at, { date: true }), text: `${x.state} by ${x.by}` });
    return h("p", attrs, what, " ", by, " ", button("Undo", `Undo ${x.state === "dismissed" ? "dismissing" : "confirming"}`, null));
  }

  function drawTick() {
    const box = $("dialog.lightbox");
    const p = st.photos[st.index];
    const button = $("#lb-tick", box);
    const on = Boolean(p.step && ctx.ticked(p.step));
    button.disabled = !boot.canEdit || !p.step;
    button.setAttribute("aria-pressed", String(on));
    button.textContent = p.step ? (on ? `✓ Step ${stepNo(p.step)} ticked` : `Tick step ${stepNo(p.step)}`) : "Tick step";
  }

  function go(delta) {
    if (!st.photos) return;
    const next = st.index + delta;
    if (next < 0 || next >= st.photos.length) return;
    st.index = next;
    $("#lb-note").textContent = "";
    drawLarge();
  }

  function openOther(dropId) {
    $("dialog.lightbox").close();
    ctx.openDrop(dropId);
  }

  // -- zoom and swipe -----------------------------------------------------------------

  function setZoom(z, at) {
    const img = $("#lb-image");
    const picture = $("#lb-picture");
    if (!img || !picture || !img.naturalWidth) return; // not loaded yet
    const aspect = img.naturalHeight / img.naturalWidth;
    // The width the whole picture is shown at when it fits (letterboxed in the stage).
    if (st.zoom === 1) st.fitWidth = Math.min(picture.clientWidth, picture.clientHeight / aspect);
    const before = st.zoom;
    const rect = picture.getBoundingClientRect();
    const ax = at ? at.x - rect.left : rect.width / 2;
    const ay = at ? at.y - rect.top : rect.height / 2;
    // Where the picture's corner is now: centred when it fits, scrolled when zoomed.
    const left = before === 1 ? (picture.clientWidth - st.fitWidth) / 2 : -picture.scrollLeft;
    const top = before === 1 ? (picture.clientHeight - st.fitWidth * aspect) / 2 : -picture.scrollTop;
    st.zoom = Math.max(1, Math.min(6, z));
    picture.classList.toggle("zoomed", st.zoom > 1);
    if (st.zoom === 1) img.style.removeProperty("width");
    else img.style.width = `${Math.round(st.fitWidth * st.zoom)}px`;
    // The point under the pointer (or the middle) stays there.
    const ratio = st.zoom / before;
    picture.scrollLeft = (ax - left) * ratio - ax;
    picture.scrollTop = (ay - top) * ratio - ay;
    $("dialog.lightbox").dataset.zoom = String(st.zoom);
  }

  const zoomBy = (f) => setZoom(Math.round(st.zoom * f * 100) / 100);

  function onImageClick(e) {
    if (st.swiped) return;
    setZoom(st.zoom > 1 ? 1 : 2.5, { x: e.clientX, y: e.clientY });
  }

  function swipeStart(e) {
    st.swipe = { x: e.clientX, y: e.clientY };
    st.swiped = false;
  }

  function swipeEnd(e) {
    const s = st.swipe;
    st.swipe = null;
    if (!s || st.zoom > 1) return;
    const dx = e.clientX - s.x;
    const dy = e.clientY - s.y;
    if (Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) {
      st.swiped = true;
      go(dx < 0 ? 1 : -1);
    }
  }

  // -- decisions on a photo -----------------------------------------------------------

  // One decision on photo `p`, sent after the ones before it; `undo` puts the screen back
  // when the server refuses it.
  function patch(p, body, done, undo) {
    const id = p.id;
    st.pending += 1;
    st.inflight.set(id, (st.inflight.get(id) || 0) + 1);
    const dropId = st.dropId;
    st.queue = st.queue.then(async () => {
      let text;
      try {
        const fresh = (await api("PATCH", `/api/wa-monitor-photos/${id}`, body)).body.data;
        if (dropId !== st.dropId) return;
        const i = st.photos.findIndex((x) => x.id === id);
        // A later key on the same photo is on the screen already: keep it shown.
        if (i >= 0 && st.inflight.get(id) > 1) Object.assign(fresh, { step: st.photos[i].step, hints: st.photos[i].hints });
        if (i >= 0 && st.drop && fresh.dropId !== st.drop.id) st.photos.splice(i, 1);
        else if (i >= 0) st.photos[i] = fresh;
        text = done(fresh);
      } catch (e) {
        const now = (st.photos || []).find((x) => x.id === id);
        if (undo && now) undo(now);
        text = `Not changed: ${e.message}`;
      } finally {
        st.pending -= 1;
        const left = st.inflight.get(id) - 1;
        if (left) st.inflight.set(id, left);
        else st.inflight.delete(id);
      }
      st.key = JSON.stringify(st.photos);
      const note = $("#lb-note");
      if (note) note.textContent = text;
      redraw();
      if (!st.pending) ctx.photosChanged();
    });
    return st.queue;
  }

  // Shown at once (the next key may tick it), confirmed or undone by the server's answer.
  function assign(col) {
    const p = st.photos[st.index];
    const was = p.step || null;
    if (!boot.canEdit || was === col) return;
    p.step = col;
    redraw();
    patch(p, { step: col }, () => (col ? `Assigned to step ${stepName(col)}` : "No step any more"), (now) => (now.step = was));
  }

  // Shown at once, kept or undone by the server's answer (the others see it on their poll).
  function judge(p, kind, state) {
    const x = (p.hints || []).find((y) => y.kind === kind);
    if (!boot.canEdit || !x) return;
    const was = { state: x.state, by: x.by, at: x.at };
    Object.assign(x, state ? { state, by: boot.user, at: new Date().toISOString() } : { state: null, by: null, at: null });
    redraw();
    const name = hintName(x);
    const text = state ? `${name}: ${state}` : `${name}: verdict taken back`;
    patch(p, { hint: { kind, state } }, () => text, (now) => Object.assign((now.hints || []).find((y) => y.kind === kind) || {}, was));
  }

  function tick() {
    const p = st.photos[st.index];
    if (!boot.canEdit || !p.step) return;
    ctx.tick(p.step, !ctx.ticked(p.step));
    drawTick();
    $("#lb-note").textContent = ctx.ticked(p.step) ? `Step ${stepName(p.step)} ticked (save the review to keep it)` : `Step ${stepName(p.step)} not ticked`;
  }

  function fillMenu(p) {
    $("#lb-move-drop").value = st.drop ? st.drop.dropNumber : "";
    // The rounds the drop is known to have: its photos', and a resubmission's.
    const rounds = Math.max(st.drop && st.drop.resubmitted ? 1 : 0, ...st.photos.map((x) => x.round || 0)) + 1;
    $("#lb-move-round").replaceChildren(...Array.from({ length: rounds }, (_, r) => h("option", { value: String(r), text: roundName(r), selected: r === p.round })));
  }

  function toggleMenu(open) {
    const box = $("dialog.lightbox");
    if (!box) return;
    const menu = $("#lb-menu", box);
    const show = open === undefined ? menu.hidden : open;
    if (show && !boot.canEdit) return;
    menu.hidden = !show;
    $("#lb-menu-button", box).setAttribute("aria-expanded", String(show));
    if (show) {
      fillMenu(st.photos[st.index]);
      $("#lb-move-drop", box).focus();
    }
  }

  async function move() {
    const number = $("#lb-move-drop").value.trim().toUpperCase().replace(/\s+/g, "");
    const round = Number($("#lb-move-round").value);
    const body = { round };
    if (st.drop && number !== st.drop.dropNumber) {
      let target = null;
      try {
        const res = await api("GET", `/api/wa-monitor-drops?search=${encodeURIComponent(number)}&pageSize=20`);
        const same = res.body.data.filter((d) => d.dropNumber === number);
        target = same.find((d) => d.project === st.drop.project) || same[0] || null;
      } catch (e) {
        $("#lb-note").textContent = `Not moved: ${e.message}`;
        return;
      }
      if (!target) {
        $("#lb-note").textContent = `Not moved: no drop ${number}`;
        return;
      }
      body.dropId = target.id;
    }
    toggleMenu(false);
    patch(st.photos[st.index], body, (fresh) => (body.dropId ? `Moved to ${number}, ${roundName(fresh.round)}` : `Moved to ${roundName(fresh.round)}`));
  }

  function detach() {
    toggleMenu(false);
    patch(st.photos[st.index], { dropId: null }, () => "Detached from this drop");
  }

  // -- keys ---------------------------------------------------------------------------

  function onLargeKey(e) {
    const inControl = e.target.closest("input, select, textarea");
    if (e.key === "Escape") {
      const menu = $("#lb-menu");
      if (!menu.hidden) {
        e.preventDefault();
        toggleMenu(false);
        $("#lb-step").focus();
      }
      return; // otherwise the dialog closes itself
    }
    if ((e.ctrlKey || e.metaKey) && e.key === "s") {
      e.preventDefault();
      ctx.save();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    // The move menu's fields take their own keys; the step list leaves the view's keys be.
    if (inControl && e.target.id !== "lb-step") return;
    const stepIndex = stepKey(e);
    let handled = true;
    if (e.key === "ArrowLeft") go(-1);
    else if (e.key === "ArrowRight") go(1);
    else if (e.key === "Home") go(-st.index);
    else if (e.key === "End") go(st.photos.length - 1 - st.index);
    else if (stepIndex !== null) assign(boot.steps[stepIndex][0]);
    else if (e.key === "Backspace" || e.key === "Delete") assign(null);
    else if (e.key === "+" || e.code === "NumpadAdd") zoomBy(1.5);
    else if (e.key === "_" || e.code === "NumpadSubtract") zoomBy(1 / 1.5);
    else if (e.key === "z") setZoom(st.zoom > 1 ? 1 : 2.5);
    else if (e.key === "f") setZoom(1);
    else if (e.key === "t" || (e.key === " " && !e.target.closest("button"))) tick();
    else if (e.key === "m") toggleMenu();
    else if (e.key === "?") help();
    else handled = false;
    if (handled) e.preventDefault();
  }

  // Keys 1–9, 0, - and = name steps 1 to 12 (the row of keys above the letters).
  function stepKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return null;
    if (e.code === "NumpadAdd" || e.code === "NumpadSubtract") return null;
    const i = STEP_KEYS.indexOf(e.key);
    return i >= 0 && i < boot.steps.length ? i : null;
  }

  const HELP = [
    ["On the page", [["?", "this help"], ["Tab, Enter", "move to a drop or a photo, open it"], ["n", "take the next drop waiting for review"], ["o", "open the open drop's first photo"], ["Ctrl+S", "save the review"], ["Esc", "close the drop"]]],
    [
      "In the large view",
      [
        ["← →", "previous, next photo (swipe on a phone)"],
        ["Home End", "first, last photo"],
        ["1–9 0 − =", "assign the photo to step 1–12"],
        ["Backspace", "no step"],
        ["t or Space", "tick (or untick) the photo's step"],
        ["+ _ z f", "zoom in, zoom out, zoom there and back, fit"],
        ["click", "zoom where clicked; again to fit"],
        ["m", "move to another drop or round, or detach"],
        ["Ctrl+S", "save the review"],
        ["Esc", "close the large view"],
      ],
    ],
  ];

  function help() {
    let box = $("dialog.keys-help");
    if (!box) {
      box = h(
        "dialog",
        { class: "keys-help", "aria-labelledby": "help-title" },
        h("h2", { id: "help-title", text: "Keys" }),
        HELP.map(([title, keys]) => h("section", {}, h("h3", { text: title }), h("dl", {}, keys.flatMap(([k, what]) => [h("dt", {}, h("kbd", { text: k })), h("dd", { text: what })])))),
        h("p", { class: "muted", text: `Steps: ${boot.steps.map(([col], i) => `${KEY_NAMES[i]} ${label(col)}`).join(" · ")}` }),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => box.close() }, "Close"))
      );
      document.body.append(box);
    }
    if (!box.open) box.showModal();
  }

  // -- drawing ------------------------------------------------------------------------

  function redraw() {
    const box = $("#photos");
    if (box) {
      const focusedPhoto = document.activeElement && document.activeElement.closest("#photos li[data-photo]");
      box.replaceChildren(...gallery(), thread());
      const open = box.dataset.threadOpen === "1";
      $("#thread", box).open = open;
      $("#thread", box).addEventListener("toggle", (e) => (box.dataset.threadOpen = e.target.open ? "1" : ""));
      if (focusedPhoto) {
        const again = $(`li[data-photo="${focusedPhoto.dataset.photo}"] .tile-open`, box);
        if (again) again.focus();
      }
    }
    for (const [col] of boot.steps) drawStep(col);
    const large = $("dialog.lightbox");
    if (large && large.open) drawLarge();
  }

  function setDrop(drop) {
    st.drop = drop;
  }

  return { load, poll, forget, section, stepSlot, redraw, setDrop, openLarge, help, countLine, drawTick: () => $("dialog.lightbox[open]") && drawTick() };
};

(() => {
  const { boot, $, h, api } = window.WaMonitor;
  const state = {
    drops: [],
    page: 1, // pages of PAGE drops shown; "Show more" raises it (kept in the address)
    openId: null,
    open: null, // the drop shown in the editor
    dirty: false, // unsaved edits in the editor
    drafting: false, // a feedback draft is open (not wiped by refreshes)
    locked: false, // we hold the edit lock
    draftKey: null, // idempotency key of the feedback draft being sent
    busy: false, // a save or a send is under way
    serials: {}, // serials accepted from the photos while other edits are unsaved
    epoch: 0, // how many times the editor was drawn (see refresh)
    opening: 0, // how many times a drop was asked for (only the latest answer is drawn)
    loading: 0, // drops asked for and not answered yet (a refresh then opens none)
    timer: null,
    lockTimer: null,
    reasons: {}, // step → its standard rejection reasons (GET /api/wa-monitor-steps)
    agents: null, // the enabled reviewers and admins an admin may assign (loaded when asked)
    recipient: null, // the group's JID the feedback draft goes to
  };
  const PAGE = 100;
  const MAX_SHOWN = 500;
  // The states as the badges name them (colour is never the only sign).
  const STATE_TEXT = { new: "New", in_review: "In review", needs_correction: "Needs correction", resubmitted: "↻ Resubmitted", approved: "✓ Approved", invalid: "✕ Invalid" };

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
    const by = summary.byState || {};
    $("#card-waiting").textContent = (by.new || 0) + (by.resubmitted || 0) + (by.in_review || 0);
    $("#card-overdue").textContent = summary.overdue || 0;
  }

  // -- the address: the filters, the drops shown and the open drop ---------------------

  // The page's address for what is on the screen: a reload or a copied link shows it again.
  function addressNow() {
    const params = filterQuery();
    if (state.page > 1) params.set("page", String(state.page));
    if (state.openId) params.set("drop", state.openId);
    const query = params.toString();
    return `${window.location.pathname}${query ? `?${query}` : ""}`;
  }

  // `push`: a step the browser's Back undoes (opening or closing a drop); else replaced.
  function remember(push = false) {
    const url = addressNow();
    if (url === window.location.pathname + window.location.search) return;
    if (push) window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
  }

  // The filters from the address; answers the drop it names (or null).
  function applyAddress() {
    const params = new URLSearchParams(window.location.search);
    for (const el of $("#filters").elements) {
      if (!el.name) continue;
      const value = params.get(el.name) || "";
      if (el.type === "checkbox") el.checked = value === el.value;
      else {
        el.value = value;
        if (el.value !== value) el.value = ""; // not one of the choices: all
      }
    }
    const page = Number.parseInt(params.get("page") || "1", 10);
    state.page = page >= 1 && page * PAGE <= MAX_SHOWN ? page : 1;
    return params.get("drop");
  }

  const addressDrop = () => new URLSearchParams(window.location.search).get("drop");

  async function onHistory() {
    const id = applyAddress();
    lastList = "";
    if (id && id !== state.openId) await openDrop(id);
    else if (!id && state.openId && !(await closeEditor())) remember(true);
    refresh();
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
    // Posted again since: the feedback is answered, the drop waits for a new review.
    if (d.feedbackSent && d.reviewState !== "resubmitted") return h("span", { class: "chip good", text: "Feedback sent" });
    return null;
  }

  let lastList = "";

  function photoCountText(n) {
    return `${n} ${n === 1 ? "photo" : "photos"} for 12 steps`;
  }

  function stateBadge(d) {
    const s = d.reviewState;
    if (!s) return d.resubmitted ? h("span", { class: "badge state", text: "↻ Resubmitted" }) : null;
    const who = s === "in_review" && d.assignedAgent ? ` · ${d.assignedAgent}` : "";
    return h("span", { class: `badge state s-${s}`, "data-state": s, text: `${STATE_TEXT[s] || s}${who}` });
  }

  // "waited 2.5 working h": the working hours the drop has waited for a reviewer.
  function waitedText(hours) {
    const n = hours < 10 ? Math.round(hours * 10) / 10 : Math.round(hours);
    return `waited ${n} working h`;
  }

  // Every WhatsApp post of the drop was deleted ("delete for everyone").
  function deletedChip(d) {
    if (!d.postDeleted) return null;
    const when = d.postDeletedAt ? `Deleted ${d.postDeletedAt.replace("T", " ").slice(0, 16)} ${boot.zoneAbbr}` : null;
    return h("span", { class: "chip bad post-deleted", title: when, text: "🗑 Post deleted in WhatsApp" });
  }

  function waitChips(d) {
    const waited = d.waitingWorkingHours;
    return [
      waited !== null && waited !== undefined ? h("span", { class: "chip waited", title: d.waitingSince ? `Waiting since ${d.waitingSince.replace("T", " ").slice(0, 16)}` : null, text: waitedText(waited) }) : null,
      d.overdue ? h("span", { class: "chip bad overdue", text: "⏰ Overdue" }) : null,
    ];
  }

  // The installer as WhatsApp names them: the number once when there is no contact name.
  function senderText(d) {
    const name = d.userName || "";
    const phone = d.senderPhone || "";
    return phone && phone !== name ? `${name} (${phone})` : name || phone;
  }

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
            stateBadge(d),
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
            d.reviewState ? null : h("span", { class: `chip ${d.completed ? "good" : "warn"}`, text: d.completed ? "Complete" : "Incomplete" }),
            waitChips(d),
            deletedChip(d),
            d.photoCount !== undefined && d.photoCount !== null
              ? h("span", { class: `chip photo-count${d.photoCount ? "" : " none"}`, text: photoCountText(d.photoCount) })
              : null,
            (d.serialConflicts || []).length
              ? h("span", { class: "chip bad", text: `⚠ Serial also on ${d.serialConflicts.map((c) => c.dropNumber).join(", ")}` })
              : null,
            feedbackChip(d),
            d.lockedBy && d.lockedBy !== boot.user ? h("span", { class: "chip", text: `✎ ${d.lockedBy}` }) : null
          )
        )
      );
    });
    if (!items.length) items.push(h("li", { class: "muted", text: "No drops match the filters" }));
    if (pagination && pagination.total > drops.length && state.page * PAGE < MAX_SHOWN) {
      const more = () => {
        state.page += 1;
        remember();
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

  // A failure stays readable for a while: the next refresh's "Live · updated" waits.
  const FAILURE_SHOWN_MS = 15000;

  function setLive(text, bad = false) {
    if (bad) state.failureShownUntil = Date.now() + FAILURE_SHOWN_MS;
    else if (Date.now() < (state.failureShownUntil || 0)) return;
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
      params.set("pageSize", String(Math.min(MAX_SHOWN, state.page * PAGE)));
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
      $("#export-xlsx").href = `/api/wa-monitor-drops.xlsx?${exportParams}`;
      setLive(`Live · updated ${localTime()}`);
      const fresh = state.openId ? state.drops.find((d) => d.id === state.openId) : null;
      const note = $("#save-note");
      if (fresh && state.dirty && note) {
        const changed = fresh.version !== state.open.version;
        if (changed) note.textContent = CHANGED_MEANWHILE;
        else if (note.textContent === CHANGED_MEANWHILE) note.textContent = "Unsaved changes";
      }
      if (fresh && !state.dirty && !state.drafting && !state.busy && !state.loading && state.epoch === epoch) {
        if (fresh.version !== state.open.version) await openDrop(state.openId, { keepFocus: true });
        else updateFeedbackStatus(fresh);
      }
      if (state.openId && state.epoch === epoch) await photos.poll();
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
  const stepBox = (col) => $(`input[name="${col}"]`, editor);
  const photos = window.WaMonitor.photos({
    openDrop: (id) => openDrop(id),
    save: () => save(),
    ticked: (col) => Boolean(stepBox(col) && stepBox(col).checked),
    tick: (col, on) => {
      const box = stepBox(col);
      if (!box || box.disabled) return;
      box.checked = on;
      if (on) {
        const wrong = $(`input[name="wrong:${col}"]`, editor);
        if (wrong.checked) {
          wrong.checked = false;
          wrong.dispatchEvent(new Event("change"));
        }
      }
      onEdit();
    },
    serial: (field) => state.serials[field] ?? (state.open ? state.open[field] : null),
    acceptSerial,
    photosChanged: () => refresh(),
  });

  async function openDrop(id, { keepFocus = false } = {}) {
    if (state.dirty && id !== state.openId) {
      if (!window.confirm("Discard your unsaved changes to this drop?")) return;
      await releaseLock();
    }
    let detail;
    const ticket = ++state.opening;
    state.loading += 1;
    try {
      [detail] = await Promise.all([api("GET", `/api/wa-monitor-drops/${id}`).then((r) => r.body.data), photos.load(id)]);
    } catch (e) {
      setLive(`Could not open the drop: ${e.message}`, true);
      if (addressDrop() === id && id !== state.openId) {
        const params = new URLSearchParams(window.location.search);
        params.delete("drop");
        const query = params.toString();
        window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
      }
      return false;
    } finally {
      state.loading -= 1;
    }
    // Opened again meanwhile (a save or a send re-opens it): that answer is the newer one.
    if (ticket !== state.opening) return;
    if (id !== state.openId) state.draftKey = null;
    state.serials = {};
    photos.setDrop(detail.drop);
    state.drafting = false;
    state.openId = id;
    state.open = detail.drop;
    state.dirty = false;
    state.epoch += 1;
    renderEditor(detail);
    for (const li of document.querySelectorAll("#drops .drop")) li.classList.toggle("open", li.dataset.id === id);
    if (addressDrop() !== id) remember(true);
    if (!keepFocus) $("#editor-title").focus();
    return true;
  }

  // Someone else holds a live (under five minutes old) edit lock on the drop.
  function lockedByOther(d) {
    return Boolean(d.lockedBy && d.lockedBy !== boot.user && Date.parse(d.lockedAt) + 300000 > Date.now());
  }

  // The standard reasons of a step as toggles, and those the drop has that are not (free text).
  function reasonChips(col, label, d, readOnly, hidden) {
    const picked = (d.incorrectReasons || {})[col] || [];
    const known = state.reasons[col] || [];
    const extra = picked.filter((r) => !known.some((k) => k.toLowerCase() === r.toLowerCase()));
    const all = [...known, ...extra];
    if (!all.length) return null;
    const on = (r) => picked.some((p) => p.toLowerCase() === r.toLowerCase());
    return h(
      "div",
      { class: "reasons", role: "group", "aria-label": `Reasons: ${label}`, "data-reasons": col, hidden },
      all.map((r) =>
        h(
          "button",
          {
            type: "button",
            class: "reason-chip",
            "aria-pressed": String(on(r)),
            "data-reason": r,
            disabled: readOnly,
            onclick: (e) => {
              const b = e.currentTarget;
              b.setAttribute("aria-pressed", String(b.getAttribute("aria-pressed") !== "true"));
              onEdit();
            },
          },
          r
        )
      )
    );
  }

  // Who holds the drop; an admin assigns or releases it, the holder releases it.
  function assignmentParts(d) {
    const parts = [h("span", { id: "assignee", text: d.assignedAgent ? `Assigned to ${d.assignedAgent}` : "Not assigned" })];
    if (boot.isAdmin) {
      const options = (state.agents || []).map((u) => h("option", { value: u, text: u, selected: u === d.assignedAgent }));
      parts.push(
        h(
          "label",
          { class: "assign-to" },
          " Assign to ",
          h("select", { id: "assign-agent", onfocus: loadAgents }, options.length ? options : [h("option", { value: "", text: "Loading…" })])
        ),
        h("button", { type: "button", id: "assign", onclick: assignDrop }, "Assign")
      );
    }
    if (d.assignedAgent && (boot.isAdmin || d.assignedAgent === boot.user)) parts.push(h("button", { type: "button", id: "release", class: "link", onclick: releaseDrop }, "Release"));
    parts.push(h("span", { id: "assign-note", class: "muted", "aria-live": "polite" }));
    return parts;
  }

  async function loadAgents() {
    if (state.agents) return;
    try {
      const users = (await api("GET", "/api/wa-monitor-users")).body.data;
      state.agents = users.filter((u) => !u.disabled && (u.role === "reviewer" || u.role === "admin")).map((u) => u.username);
    } catch (e) {
      const note = $("#assign-note");
      if (note) note.textContent = e.message;
      return;
    }
    if (state.open) drawAssignment(state.open);
  }

  function drawAssignment(d) {
    const box = $("#assignment");
    if (box) box.replaceChildren(...assignmentParts(d));
  }

  // The drop as the server answered an assignment: shown without losing unsaved edits.
  async function afterAssignment(drop, text) {
    if (!state.dirty) await openDrop(drop.id, { keepFocus: true });
    else {
      if (drop.version === state.open.version + 1) state.open.version = drop.version;
      Object.assign(state.open, { assignedAgent: drop.assignedAgent, assignedAt: drop.assignedAt });
      drawAssignment(state.open);
    }
    $("#assign-note").textContent = text;
    refresh();
  }

  async function assignDrop() {
    const agent = $("#assign-agent").value;
    if (!agent) return;
    try {
      const res = await api("POST", `/api/wa-monitor-drops/${state.openId}/assign`, { agent });
      await afterAssignment(res.body.data, `Assigned to ${agent}`);
    } catch (e) {
      $("#assign-note").textContent = `Not assigned: ${e.message}`;
    }
  }

  async function releaseDrop() {
    try {
      const res = await api("POST", `/api/wa-monitor-drops/${state.openId}/release`);
      if (state.open.assignedAgent === boot.user) state.locked = false;
      await afterAssignment(res.body.data, "Released: back in the queue");
    } catch (e) {
      $("#assign-note").textContent = `Not released: ${e.message}`;
    }
  }

  // The feedback the group was sent last, word for word, with its state.
  function sentFeedback(d) {
    const f = d.feedback;
    if (!f || !f.message) return null;
    const at = (f.sentAt || f.createdAt || "").replace("T", " ").slice(0, 16);
    const what = f.status === "sent" ? `Sent ${at} ${boot.zoneAbbr}` : f.status === "unconfirmed" ? "Delivery unconfirmed" : f.status === "failed" ? "Failed" : "Queued";
    return h(
      "div",
      { class: "sent-feedback", id: "sent-feedback", "data-status": f.status },
      h("p", { class: "sent-head" }, h("span", { class: `chip ${FEEDBACK_CHIPS[f.status] || "pending"}`, text: what }), ` by ${f.requestedBy || "?"} · the text the group got:`),
      h("pre", { class: "sent-text", text: f.message })
    );
  }

  const HISTORY_TEXT = {
    edit: "edited the review",
    feedback: "asked for this feedback to be sent",
    feedback_queued: "asked for feedback to be sent",
    feedback_sent: "feedback delivered",
    feedback_unconfirmed: "feedback delivery unconfirmed",
    feedback_failed: "feedback failed",
    feedback_retry_scheduled: "feedback to be retried",
    feedback_marked_sent: "marked the feedback as sent",
    assign: "assigned the drop",
    release: "released the drop",
  };

  // One entry of the drop's history: who, when, and what changed, in words.
  function historyItem(e) {
    const lines = [];
    const c = e.changes || {};
    const label = (col) => {
      const i = boot.steps.findIndex(([x]) => x === col);
      return i >= 0 ? `${i + 1}. ${boot.steps[i][1]}` : col;
    };
    for (const [col] of boot.steps) if (Array.isArray(c[col])) lines.push(`${label(col)}: ${c[col][1] ? "ticked" : "not ticked"}`);
    if (Array.isArray(c.incorrect_steps)) {
      const [was, now] = c.incorrect_steps.map((x) => new Set(x || []));
      for (const col of now) if (!was.has(col)) lines.push(`${label(col)}: marked incorrect`);
      for (const col of was) if (!now.has(col)) lines.push(`${label(col)}: no longer incorrect`);
    }
    if (Array.isArray(c.incorrect_reasons)) for (const [col, reasons] of Object.entries(c.incorrect_reasons[1] || {})) lines.push(`${label(col)}: reasons ${reasons.join(", ")}`);
    if (Array.isArray(c.incorrect_comments)) for (const [col, text] of Object.entries(c.incorrect_comments[1] || {})) lines.push(`${label(col)}: “${text}”`);
    if (Array.isArray(c.comment)) lines.push(`Comment: ${c.comment[1] || "(cleared)"}`);
    if (Array.isArray(c.assignedAgent)) lines.push(c.assignedAgent[1] ? `Assigned to ${c.assignedAgent[1]}` : `${c.assignedAgent[0] || "The holder"} no longer holds it`);
    if (c.group) lines.push(`To ${c.group}`);
    const message = typeof c.message === "string" ? c.message : null;
    if (c.reason) lines.push(String(c.reason));
    return h(
      "li",
      { "data-action": e.action },
      h("strong", { text: e.actor }),
      ` ${HISTORY_TEXT[e.action] || e.action.replace(/_/g, " ")} · ${e.atLocal}`,
      lines.length ? h("ul", { class: "changes-made" }, lines.map((l) => h("li", { text: l }))) : null,
      message ? h("pre", { class: "sent-text", text: message }) : null
    );
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
        photos.stepSlot(col),
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
        reasonChips(col, label, d, readOnly, !wrong.has(col)),
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
    const history = detail.edits.map(historyItem);
    if (d.postDeleted) {
      const at = d.postDeletedAt ? ` · ${d.postDeletedAt.replace("T", " ").slice(0, 16)} ${boot.zoneAbbr}` : "";
      history.unshift(h("li", { "data-action": "post_deleted", class: "post-deleted" }, h("strong", { text: "WhatsApp" }), ` Post deleted in WhatsApp${at}`));
    }
    editor.replaceChildren(
      h(
        "div",
        { class: "editor-head" },
        h("h2", { id: "editor-title", tabindex: "-1", text: d.dropNumber }),
        stateBadge(d),
        waitChips(d),
        deletedChip(d),
        h("button", { type: "button", class: "link close", onclick: closeEditor, "aria-label": "Close the drop" }, "✕ Close")
      ),
      h("p", { class: "muted", id: "editor-meta" }, `${d.project ?? "(no project)"} · ${senderText(d)} · received ${d.receivedLocal || "?"}`),
      h("div", { class: "assignment", id: "assignment" }, assignmentParts(d)),
      h("p", { id: "lock-note", class: "note", hidden: !lockedByOther(d), text: lockedByOther(d) ? `Being edited by ${d.lockedBy}` : "" }),
      photos.section(),
      h(
        "form",
        { id: "review", onsubmit: save },
        h("p", { class: "progress-line" }, h("strong", { id: "editor-progress", text: `${d.completedPhotos}/12` }), " steps ticked"),
        h("ul", { class: "steps" }, steps),
        monitorNotes(d),
        h("label", { for: "comment", text: "Comment" }),
        h("textarea", { id: "comment", name: "comment", rows: "3", disabled: readOnly, oninput: onEdit }, ownComment(d)),
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
        readOnly ? null : h("button", { type: "button", id: "send", class: "primary", hidden: true, onclick: confirmSend }, "Send to WhatsApp"),
        h("p", { id: "feedback-note", class: "note", "aria-live": "polite" }),
        sentFeedback(d),
        h("ul", { id: "feedback-list", class: "feedback-list" }, feedbackList)
      ),
      h("details", { class: "history", id: "history" }, h("summary", { text: `History (${history.length})` }), h("ul", {}, history))
    );
    editor.hidden = false;
    document.body.classList.add("editing");
    photos.redraw();
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
    photos.drawTick();
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
    const chips = $(`[data-reasons="${col}"]`, li);
    if (chips) chips.hidden = !event.target.checked;
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
    // The lock on a drop nobody held makes it the editor's: the line says so at once.
    if (state.open && drop && drop.id === state.open.id && drop.assignedAgent !== state.open.assignedAgent) {
      Object.assign(state.open, { assignedAgent: drop.assignedAgent, assignedAt: drop.assignedAt });
      drawAssignment(state.open);
    }
  }

  async function releaseLock() {
    clearInterval(state.lockTimer);
    if (state.locked && state.openId) {
      state.locked = false;
      await api("POST", `/api/wa-monitor-drops/${state.openId}/unlock`).catch(() => {});
    }
  }

  // A serial read from the photos, accepted: saved at once, or with the unsaved edits.
  async function acceptSerial(field, value) {
    if (state.dirty || state.busy) {
      state.serials[field] = value;
      photos.redraw();
      onEdit();
      $("#save-note").textContent = "Unsaved changes · serial accepted, saved with the review";
      return;
    }
    await submit({ [field]: value }, state.open.version);
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

  // The comment box holds what reviewers wrote; the monitor's resubmission lines are
  // history (shown apart) and are written back after the reviewer's text, as stored.
  // Split on line feeds only: a reviewer's text keeps every other character as typed.
  function commentParts(d) {
    const lines = (d.comment || "").split("\n");
    const mark = boot.resubmissionMark;
    const notes = mark ? lines.filter((l) => l.startsWith(mark)) : [];
    const own = mark ? lines.filter((l) => !l.startsWith(mark)).join("\n").trim() : d.comment || "";
    return { own, notes };
  }

  const ownComment = (d) => commentParts(d).own;

  function storedComment(own, d) {
    const { notes } = commentParts(d);
    if (!notes.length) return own;
    return [...(own.trim() ? [own.replace(/\s+$/, "")] : []), ...notes].join("\n");
  }

  function monitorNotes(d) {
    const { notes } = commentParts(d);
    if (!notes.length) return null;
    return h(
      "section",
      { class: "monitor-notes", id: "monitor-notes", "aria-labelledby": "notes-title" },
      h("h4", { id: "notes-title", text: `Resubmissions (${notes.length}), noted by the monitor` }),
      h("ol", {}, notes.map((n) => h("li", { text: n })))
    );
  }

  // The review as the editor shows it, in the drop's own shape.
  function edited() {
    const d = { incorrectSteps: [], incorrectComments: {}, incorrectReasons: {}, comment: $("#comment").value };
    for (const [col] of boot.steps) {
      d[col] = $(`input[name="${col}"]`, editor).checked;
      if ($(`input[name="wrong:${col}"]`, editor).checked) {
        d.incorrectSteps.push(col);
        const why = $(`input[name="why:${col}"]`, editor).value.trim();
        if (why) d.incorrectComments[col] = why;
        const picked = [...editor.querySelectorAll(`[data-reasons="${col}"] [aria-pressed="true"]`)].map((b) => b.dataset.reason);
        if (picked.length) d.incorrectReasons[col] = picked;
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
    const wasReasons = Object.fromEntries(Object.entries(was.incorrectReasons || {}).filter(([c, v]) => v.length && was.incorrectSteps.includes(c)));
    if (!same(now.incorrectReasons, wasReasons)) {
      body.incorrectReasons = now.incorrectReasons;
      body.incorrectSteps = now.incorrectSteps;
    }
    if (now.comment !== ownComment(was)) body.comment = storedComment(now.comment, was);
    for (const [field, value] of Object.entries(state.serials)) if (value !== was[field]) body[field] = value;
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
              h("textarea", { id: "conflict-mine-comment", rows: "6" }, mine.comment)
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
      if (text) again.comment = storedComment(text.value, current);
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
      state.recipient = draft.recipient;
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

  // Nothing goes to a group unseen: the exact text and where it goes, then Confirm.
  function confirmSend() {
    const text = $("#feedback-text").value;
    const project = state.open.project;
    const group = (project && boot.groups[project]) || "";
    const dialog = h(
      "dialog",
      { class: "conflict confirm-send", id: "confirm-send", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-to" },
      h("h2", { id: "confirm-title", text: `Send this feedback on ${state.open.dropNumber}?` }),
      h(
        "p",
        { id: "confirm-to" },
        "To the WhatsApp group of ",
        h("strong", { id: "confirm-group", text: `${project ?? "(no project)"}${group ? ` · ${group}` : ""}` }),
        state.recipient ? h("span", { class: "muted", text: ` (${state.recipient})` }) : h("span", { class: "no-group", text: " (no group is configured: it cannot be sent)" })
      ),
      h("pre", { class: "sent-text", id: "confirm-text", text }),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "primary", id: "confirm-send-button", onclick: confirmed }, "Confirm and send"),
        h("button", { type: "button", class: "link", onclick: () => dialog.close() }, "Back to editing")
      )
    );
    function confirmed() {
      dialog.close();
      sendFeedback();
    }
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    $("#confirm-send-button", dialog).focus();
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

  // The oldest drop nobody holds, held for this reviewer (the server's lock), opened.
  async function nextDrop() {
    const note = $("#next-note");
    if (state.dirty && !window.confirm("Discard your unsaved changes to this drop?")) return;
    note.hidden = true;
    const project = $("#filters").elements.project.value;
    let drop;
    try {
      const res = await api("POST", "/api/wa-monitor-drops/next", project ? { project } : {});
      drop = res.body.data;
      if (!drop) {
        note.textContent = res.body.message || "Nothing waits for review";
        note.hidden = false;
        return;
      }
    } catch (e) {
      note.textContent = `No drop taken: ${e.message}`;
      note.hidden = false;
      return;
    }
    state.dirty = false;
    await releaseLock();
    if (await openDrop(drop.id)) await takeLock();
    refresh();
  }

  async function closeEditor() {
    if (state.dirty && !window.confirm("Discard your unsaved changes to this drop?")) return false;
    await releaseLock();
    const id = state.openId;
    state.openId = null;
    state.open = null;
    state.dirty = false;
    photos.forget();
    editor.hidden = true;
    editor.replaceChildren();
    document.body.classList.remove("editing");
    const li = id ? document.querySelector(`#drops .drop[data-id="${CSS.escape(id)}"] button`) : null;
    if (li) li.focus();
    for (const el of document.querySelectorAll("#drops .drop.open")) el.classList.remove("open");
    if (addressDrop()) remember(true);
    return true;
  }

  // -- wiring -------------------------------------------------------------------------

  // A changed filter starts from the first drops again; the address keeps it.
  function onFilters() {
    state.page = 1;
    remember();
    refresh();
  }

  let filterTimer = null;
  $("#filters").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(onFilters, 250);
  });
  $("#filters").addEventListener("reset", () => setTimeout(onFilters, 0));
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    onFilters();
  });
  window.addEventListener("popstate", onHistory);
  const nextButton = $("#next-drop");
  if (nextButton) nextButton.addEventListener("click", nextDrop);
  document.addEventListener("keydown", (e) => {
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    const typing = e.target.closest && e.target.closest("input[type=text], input[type=search], input[type=date], textarea, select");
    if (!typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (e.key === "?") {
        e.preventDefault();
        photos.help();
        return;
      }
      if (e.key === "o" && state.openId) {
        e.preventDefault();
        photos.openLarge(0);
        return;
      }
      if (e.key === "n" && boot.canEdit) {
        e.preventDefault();
        nextDrop();
        return;
      }
    }
    if (e.key === "Escape" && state.openId) closeEditor();
    if ((e.ctrlKey || e.metaKey) && e.key === "s" && state.openId && boot.canEdit) {
      e.preventDefault();
      save();
    }
  });
  window.addEventListener("beforeunload", (e) => {
    if (state.dirty) e.preventDefault();
  });
  // The steps' standard reasons (none when the server has none to offer).
  async function loadReasons() {
    try {
      const steps = (await api("GET", "/api/wa-monitor-steps")).body.data;
      state.reasons = Object.fromEntries(steps.map((x) => [x.step, x.reasons || []]));
    } catch (_e) {
      state.reasons = {};
    }
  }

  const linked = applyAddress();
  const reasons = loadReasons();
  refresh().then(schedule);
  if (linked) reasons.then(() => openDrop(linked));
  if (boot.isAdmin) loadAgents();
})();
