// The quarantine page and the eval page: paged tables, each page a data file loaded when shown.
"use strict";

(function () {
  const P = window.PERPO;
  const PER_VIEW = 100;

  function pager(state, pages, refresh) {
    const go = function (p) { return function () { state.page = p; refresh(); }; };
    document.getElementById("pager").replaceChildren(
      P.el("button", { onclick: go(state.page - 1), disabled: state.page === 0 }, "‹"),
      P.el("span", { text: " page " + (state.page + 1) + " of " + pages + " " }),
      P.el("button", { onclick: go(state.page + 1), disabled: state.page >= pages - 1 }, "›"));
  }

  function pageFiles(prefix, indices, perFile) {
    const files = Array.from(new Set(indices.map(function (i) { return Math.floor(i / perFile); })));
    return Promise.all(files.map(function (k) { return P.load(prefix + "/page-" + String(k).padStart(5, "0")); }));
  }

  function rowOf(prefix, i, perFile) {
    const k = Math.floor(i / perFile);
    return P.loaded(prefix + "/page-" + String(k).padStart(5, "0"))[i - k * perFile];
  }

  function quarantine(S) {
    const Q = S.quarantine;
    const state = { stage: -1, reason: -1, page: 0 };
    return P.load("quarantine/facets").then(function (facets) {
      const stage = P.codes(facets.stage), reason = P.codes(facets.reason);
      const select = function (name, labels) {
        const node = P.el("select", { "data-testid": "q-" + name }, P.el("option", { value: "-1", text: "every " + name }));
        labels.forEach(function (l, k) { node.append(P.el("option", { value: String(k), text: l })); });
        node.addEventListener("change", function () { state[name] = Number(node.value); state.page = 0; refresh(); });
        return node;
      };
      document.getElementById("qfilters").replaceChildren(select("stage", Q.stages), " ", select("reason", Q.reasons));
      function refresh() {
        const shown = [];
        for (let i = 0; i < Q.n; i++) {
          if ((state.stage < 0 || stage[i] === state.stage) && (state.reason < 0 || reason[i] === state.reason)) shown.push(i);
        }
        document.getElementById("count").replaceChildren(P.el("b", { text: String(shown.length) }), " of " + Q.n + " quarantined rows");
        const pages = Math.max(1, Math.ceil(shown.length / PER_VIEW));
        pager(state, pages, refresh);
        const slice = shown.slice(state.page * PER_VIEW, (state.page + 1) * PER_VIEW);
        pageFiles("quarantine", slice, Q.per_page).then(function () {
          const body = document.querySelector("#qrows tbody");
          body.replaceChildren.apply(body, slice.map(function (i) {
            const r = rowOf("quarantine", i, Q.per_page);
            const ref = r[6] >= 0 ? P.el("a", { href: "task.html#p=" + r[6], text: r[2] })
              : P.el("span", {}, r[2], P.el("div", { class: "img-missing small", text: "no task, no image: set aside before it became one" }));
            return P.el("tr", { "data-testid": "q-row" }, P.el("td", { text: r[0] }), P.el("td", { text: String(r[1]) }), P.el("td", {}, ref),
              P.el("td", {}, P.el("span", { class: "tag bad", text: r[3] })), P.el("td", { text: r[4] || "" }),
              P.el("td", {}, r[5] ? P.el("details", {}, P.el("summary", { text: "record" }), P.el("pre", { text: r[5] })) : ""));
          }));
          document.body.setAttribute("data-ready", "1");
        }).catch(P.showError);
      }
      refresh();
    });
  }

  function evalTables(S) {
    const state = { table: 0, page: 0 };
    if (!S.eval.length) {
      document.getElementById("count").textContent = "This run has no eval table.";
      document.body.setAttribute("data-ready", "1");
      return Promise.resolve();
    }
    const select = P.el("select", { "data-testid": "eval-table" });
    S.eval.forEach(function (t, k) { select.append(P.el("option", { value: String(k), text: t.name + " (" + t.n + " rows)" })); });
    select.addEventListener("change", function () { state.table = Number(select.value); state.page = 0; refresh(); });
    document.getElementById("efilters").replaceChildren(select);
    function cell(v) {
      if (v === null || v === undefined) return "";
      if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(4);
      if (typeof v === "object") return JSON.stringify(v);
      return String(v);
    }
    function refresh() {
      const t = S.eval[state.table];
      const pages = Math.max(1, Math.ceil(t.n / PER_VIEW));
      pager(state, pages, refresh);
      document.getElementById("count").replaceChildren(P.el("b", { text: String(t.n) }), " rows of " + t.name);
      const idx = [];
      for (let i = state.page * PER_VIEW; i < Math.min(t.n, (state.page + 1) * PER_VIEW); i++) idx.push(i);
      pageFiles("eval/" + t.name, idx, t.per_page).then(function () {
        const table = document.getElementById("erows");
        table.querySelector("thead").replaceChildren(P.el("tr", {}, t.columns.map(function (c) { return P.el("th", { text: c }); })));
        const body = table.querySelector("tbody");
        body.replaceChildren.apply(body, idx.map(function (i) {
          const r = rowOf("eval/" + t.name, i, t.per_page);
          return P.el("tr", {}, r.map(function (v) { return P.el("td", { text: P.visible(cell(v)) }); }));
        }));
        document.body.setAttribute("data-ready", "1");
      }).catch(P.showError);
    }
    refresh();
    return Promise.resolve();
  }

  P.load("summary").then(function (S) {
    document.getElementById("run-name").textContent = S.run;
    const evalLink = document.getElementById("nav-eval");
    if (evalLink && !S.eval.length && document.body.classList.contains("page-quarantine")) evalLink.remove();
    return document.body.classList.contains("page-eval") ? evalTables(S) : quarantine(S);
  }).catch(P.showError);
})();
