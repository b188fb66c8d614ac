// perpo-pipeline viewer: shared code of every page (data loading, DOM helpers, the review store).
// Data files are scripts that call PERPO.define(name, data): pages opened from file:// may load
// scripts but not fetch() local files. A page loads only the files of what it shows.
"use strict";

window.PERPO = (function () {
  const defs = {};
  const pending = {};

  function define(name, data) {
    defs[name] = data;
  }

  function load(name) {
    if (name in defs) return Promise.resolve(defs[name]);
    if (pending[name]) return pending[name];
    pending[name] = new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = "data/" + name + ".js";
      script.onload = function () {
        if (name in defs) resolve(defs[name]);
        else reject(new Error("data/" + name + ".js defined nothing"));
      };
      script.onerror = function () {
        delete pending[name];
        reject(new Error("cannot load data/" + name + ".js (was the viewer folder moved or cut short?)"));
      };
      document.head.appendChild(script);
    });
    return pending[name];
  }

  function loaded(name) {
    return defs[name];
  }

  // Facet columns are strings of characters chr(32 + value).
  function codes(text) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) - 32;
    return out;
  }

  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { if (c) node.append(c); });
      else node.append(child);
    }
    return node;
  }

  // node.replaceChildren without the null / false entries that optional parts leave.
  function replace(node) {
    const kids = Array.prototype.slice.call(arguments, 1).filter(function (k) { return k !== null && k !== undefined && k !== false; });
    node.replaceChildren.apply(node, kids);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  // Model output may hold control characters: show them as their Unicode control pictures.
  function visible(text) {
    if (text === null || text === undefined) return "";
    return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, function (c) {
      const code = c.charCodeAt(0);
      return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code);
    });
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toFixed(digits === undefined ? 2 : digits);
  }

  function colour(summary, origin) {
    return summary.colours[origin] || "#777777";
  }

  // An image element that turns into a labelled placeholder if its file fails to load.
  function image(src, error, attrs, what) {
    if (!src) return el("div", { class: "img-missing", "data-testid": "img-missing", title: error || "" },
      (what || "image") + " not available" + (error ? ": " + error : ""));
    const img = el("img", Object.assign({ src: src, alt: what || "image" }, attrs || {}));
    img.addEventListener("error", function () {
      img.replaceWith(el("div", { class: "img-missing", "data-testid": "img-missing" },
        (what || "image") + " failed to load (" + src + ")"));
    });
    return img;
  }

  function showError(err) {
    const box = document.getElementById("error");
    if (!box) return;
    box.hidden = false;
    box.textContent = "The viewer could not load its data: " + (err && err.message ? err.message : err);
  }

  // --- the review store: a person's flags, decisions and orders, kept in localStorage per run
  function meaningful(entry) {
    return !!entry && (entry.decision === "drop" || (entry.flags && entry.flags.length > 0) ||
      (entry.order && entry.order.length > 0) || (entry.note && entry.note.trim() !== ""));
  }

  function cleanEntry(entry) {
    const out = { task_id: entry.task_id, decision: entry.decision || "keep", flags: (entry.flags || []).slice().sort() };
    if (entry.order && entry.order.length) out.order = entry.order.slice();
    if (entry.note && entry.note.trim()) out.note = entry.note.trim();
    return out;
  }

  function reviewStore(summary) {
    const key = summary.review.key;
    let state = null;
    try { state = JSON.parse(window.localStorage.getItem(key) || "null"); } catch (e) { state = null; }
    if (!state || typeof state !== "object") {
      state = {};
      for (const entry of summary.review.entries || []) state[entry.task_id] = cleanEntry(entry);
    }
    const listeners = [];
    function save() {
      try { window.localStorage.setItem(key, JSON.stringify(state)); } catch (e) { /* private mode: kept in memory */ }
      listeners.forEach(function (fn) { fn(); });
    }
    return {
      get: function (id) { return state[id] ? Object.assign({}, state[id]) : null; },
      set: function (id, entry) {
        entry.task_id = id;
        if (meaningful(entry)) state[id] = cleanEntry(entry); else delete state[id];
        save();
      },
      has: function (id) { return id in state; },
      count: function () { return Object.keys(state).length; },
      jsonl: function () {
        return Object.keys(state).sort().map(function (id) { return JSON.stringify(cleanEntry(state[id])) + "\n"; }).join("");
      },
      clear: function () { state = {}; save(); },
      onChange: function (fn) { listeners.push(fn); },
      download: function () {
        const blob = new Blob([this.jsonl()], { type: "application/x-ndjson" });
        const link = el("a", { href: URL.createObjectURL(blob), download: "review.jsonl" });
        document.body.append(link);
        link.click();
        setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 2000);
      },
    };
  }

  // The review bar of every page: how many lists are reviewed, download, clear.
  function reviewBar(summary, store) {
    const bar = document.getElementById("review-bar");
    if (!bar) return;
    const count = el("span", { id: "n-reviewed", "data-testid": "n-reviewed" });
    const refresh = function () { count.textContent = String(store.count()); };
    store.onChange(refresh);
    refresh();
    replace(bar,
      el("span", { text: "reviewed lists: " }), count, " ",
      el("button", { id: "download-review", "data-testid": "download-review", onclick: function () { store.download(); } },
        "Download review.jsonl"),
      " ",
      el("button", { id: "clear-review", onclick: function () {
        if (window.confirm("Forget every flag and order of this run's review?")) store.clear();
      } }, "Clear"),
      summary.review.source ? el("span", { class: "muted", text: " (started from " + summary.review.source + ")" }) : null,
      summary.review.error ? el("span", { class: "warn", text: " review file not loaded: " + summary.review.error }) : null
    );
  }

  return { define: define, load: load, loaded: loaded, replace: replace, codes: codes, el: el, svg: svg, visible: visible, fmt: fmt,
    colour: colour, image: image, showError: showError, reviewStore: reviewStore, reviewBar: reviewBar };
})();
