// What every WA Monitor page script shares: DOM building and the JSON API client.
"use strict";

window.WaMonitor = (() => {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const $ = (sel, root = document) => root.querySelector(sel);

  // Attributes a browser follows or loads: only web addresses go there, never a
  // `javascript:` or `data:` URL made of text that came from WhatsApp or a user.
  const URL_ATTRS = new Set(["href", "src", "action", "formaction", "poster", "xlink:href"]);

  function safeUrl(value) {
    try {
      const url = new URL(String(value), window.location.href);
      if (url.protocol === "http:" || url.protocol === "https:") return url.href;
    } catch (_e) {
      // not a URL at all
    }
    return "about:blank";
  }

  // Text only ever becomes text nodes or attribute values: no markup is parsed here.
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) {
        if (typeof v !== "function") throw new TypeError(`${k} must be a function`);
        el.addEventListener(k.slice(2), v);
      } else if (v === true) el.setAttribute(k, "");
      else if (URL_ATTRS.has(k.toLowerCase())) el.setAttribute(k, safeUrl(v));
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  class ApiFailure extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
      this.details = (body && body.error && body.error.details) || [];
    }
  }

  // The API with the session cookie and its CSRF token; a lapsed session signs in again
  // and comes back to this page. A FormData body goes as multipart (an upload), any other
  // as JSON.
  async function api(method, path, body, headers = {}) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", ...headers },
    };
    if (method !== "GET") init.headers["X-CSRF-Token"] = boot.csrf;
    if (body instanceof FormData) {
      init.body = body; // the browser writes the multipart boundary itself
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
      throw new ApiFailure(401, null);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (_e) {
      data = null;
    }
    if (!res.ok || !data || data.success === false) throw new ApiFailure(res.status, data);
    return { status: res.status, body: data };
  }

  return { boot, $, h, api, ApiFailure, safeUrl };
})();
