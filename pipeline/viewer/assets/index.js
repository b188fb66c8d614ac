// The index: filters over every task (data/facets.js, compact columns), counts per filter value, and a
// page of rows whose text and thumbnails load only for the rows shown (data/rows/page-NNNNN.js).
"use strict";

(function () {
  const P = window.PERPO;
  const PER_PAGE = 50;
  const ABSENT = 102, NO_REWARD = 101;
  let S, F, N, store;
  const totals = { type: [] }; // tasks per task type in the whole run: types the run lacks get no checkbox
  const state = { type: null, status: null, split: null, origins: [], lo: 0, hi: 1, parse: "any", quar: "any",
    image: "any", reviewed: "any", sort: "task", page: 0 };

  function readHash() {
    const raw = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    if (!raw) return;
    try { Object.assign(state, JSON.parse(raw)); } catch (e) { /* a hand-edited hash: defaults */ }
  }

  function writeHash() {
    history.replaceState(null, "", "#" + encodeURIComponent(JSON.stringify(state)));
  }

  // Best reward among the list's responses of the chosen origins (all origins when none is chosen), or -1.
  function bestOf(i, origins) {
    let best = -1;
    for (const o of origins) {
      const code = F.best[o][i];
      if (code <= 100 && code > best) best = code;
    }
    return best;
  }

  // The filters, each a [name, test(i)]; a task is shown when it passes every one.
  function filters() {
    const chosen = state.origins.length ? state.origins : S.origins;
    const lo = Math.round(state.lo * 100), hi = Math.round(state.hi * 100);
    const rewardActive = lo > 0 || hi < 100;
    const out = [];
    if (state.type) out.push(["type", function (i) { return state.type.includes(F.type[i]); }]);
    if (state.status) out.push(["status", function (i) { return state.status.includes(F.status[i]); }]);
    if (state.split) out.push(["split", function (i) { return state.split.includes(F.split[i]); }]);
    if (state.origins.length) out.push(["origins", function (i) {
      return state.origins.every(function (o) { return F.best[o][i] !== ABSENT; });
    }]);
    if (rewardActive) out.push(["reward", function (i) { const b = bestOf(i, chosen); return b >= lo && b <= hi; }]);
    if (state.parse !== "any") out.push(["parse", function (i) { return (F.pfail[i] > 0) === (state.parse === "yes"); }]);
    if (state.quar !== "any") out.push(["quar", function (i) { return (F.quar[i] > 0) === (state.quar === "yes"); }]);
    if (state.image !== "any") out.push(["image", function (i) { return (F.imgerr[i] > 0) === (state.image === "yes"); }]);
    if (state.reviewed !== "any") out.push(["reviewed", function (i) { return store.has(F.ids[i]) === (state.reviewed === "yes"); }]);
    return out;
  }

  // One pass: the tasks that pass every filter, and per facet the counts among tasks that pass all the others.
  function evaluate() {
    const active = filters();
    const names = active.map(function (f) { return f[0]; });
    const facetCounts = {
      type: new Array(S.task_types.length + 1).fill(0), status: new Array(S.statuses.length).fill(0),
      split: new Array(S.splits.length + 1).fill(0), origins: {}, parse: [0, 0], quar: [0, 0], image: [0, 0], reviewed: [0, 0],
    };
    S.origins.forEach(function (o) { facetCounts.origins[o] = 0; });
    const shown = [];
    for (let i = 0; i < N; i++) {
      let failed = -1, fails = 0;
      for (let k = 0; k < active.length; k++) {
        if (!active[k][1](i)) { failed = k; if (++fails > 1) break; }
      }
      if (fails > 1) continue;
      const free = function (name) { return fails === 0 || names[failed] === name; };
      if (fails === 0) shown.push(i);
      if (free("type")) facetCounts.type[F.type[i]]++;
      if (free("status")) facetCounts.status[F.status[i]]++;
      if (free("split")) facetCounts.split[F.split[i]]++;
      if (free("origins")) S.origins.forEach(function (o) { if (F.best[o][i] !== ABSENT) facetCounts.origins[o]++; });
      if (free("parse")) facetCounts.parse[F.pfail[i] > 0 ? 1 : 0]++;
      if (free("quar")) facetCounts.quar[F.quar[i] > 0 ? 1 : 0]++;
      if (free("image")) facetCounts.image[F.imgerr[i] > 0 ? 1 : 0]++;
      if (free("reviewed")) facetCounts.reviewed[store.has(F.ids[i]) ? 1 : 0]++;
    }
    return { shown: sortRows(shown), counts: facetCounts };
  }

  function sortRows(rows) {
    if (state.sort === "task") return rows;
    const chosen = state.origins.length ? state.origins : S.origins;
    const key = state.sort === "length" ? function (i) { return F.n[i]; } : function (i) { return bestOf(i, chosen); };
    const sign = state.sort === "reward_desc" || state.sort === "length" ? -1 : 1;
    return rows.slice().sort(function (a, b) { return sign * (key(a) - key(b)) || a - b; });
  }

  // --- the filter panel
  function checkboxes(title, facet, labels, counts, testid) {
    const selected = state[facet];
    const box = P.el("fieldset", { class: "facet", "data-testid": testid }, P.el("legend", { text: title }));
    labels.forEach(function (label, code) {
      if (label === null) return;
      const input = P.el("input", { type: "checkbox", value: String(code), checked: !selected || selected.includes(code),
        "data-testid": testid + "-" + label });
      input.addEventListener("change", function () {
        const values = Array.from(box.querySelectorAll("input")).filter(function (x) { return x.checked; })
          .map(function (x) { return Number(x.value); });
        state[facet] = values.length === box.querySelectorAll("input").length ? null : values;
        state.page = 0;
        refresh();
      });
      box.append(P.el("label", {}, input, " " + label + " ", P.el("span", { class: "n", text: String(counts[code] || 0) })));
    });
    return box;
  }

  function choice(title, facet, options, counts, testid) {
    const select = P.el("select", { "data-testid": testid });
    options.forEach(function (opt) {
      const label = opt[1] + (opt[2] !== undefined ? " (" + opt[2] + ")" : "");
      select.append(P.el("option", { value: opt[0], selected: state[facet] === opt[0], text: label }));
    });
    select.addEventListener("change", function () { state[facet] = select.value; state.page = 0; refresh(); });
    return P.el("label", { class: "facet-line" }, title + " ", select);
  }

  function rewardRange() {
    const make = function (key) {
      const input = P.el("input", { type: "number", min: "0", max: "1", step: "0.05", value: String(state[key]),
        "data-testid": "reward-" + key, class: "num" });
      input.addEventListener("change", function () {
        const v = Math.min(1, Math.max(0, Number(input.value) || 0));
        state[key] = v; state.page = 0; refresh();
      });
      return input;
    };
    return P.el("fieldset", { class: "facet" }, P.el("legend", { text: "best reward" }),
      P.el("div", {}, "from ", make("lo"), " to ", make("hi")),
      P.el("div", { class: "muted small", text: "best reward of the list's responses of the checked origins (all origins when none is checked), rounded to 0.01" }));
  }

  function originBoxes(counts) {
    const box = P.el("fieldset", { class: "facet", "data-testid": "facet-origin" },
      P.el("legend", { text: "list holds a response of origin" }));
    S.origins.forEach(function (o) {
      const input = P.el("input", { type: "checkbox", checked: state.origins.includes(o), "data-testid": "origin-" + o });
      input.addEventListener("change", function () {
        state.origins = input.checked ? state.origins.concat([o]) : state.origins.filter(function (x) { return x !== o; });
        state.page = 0;
        refresh();
      });
      box.append(P.el("label", {}, input, " ", P.el("span", { class: "chip", style: { background: P.colour(S, o) } }),
        " " + o + " ", P.el("span", { class: "n", text: String(counts[o] || 0) })));
    });
    return box;
  }

  function renderFilters(counts) {
    const panel = document.getElementById("filters");
    const typeLabels = S.task_types.concat(["other"]).map(function (t, k) { return totals.type[k] ? t : null; });
    const splitLabels = S.splits.concat(["none"]);
    P.replace(panel,
      checkboxes("task type", "type", typeLabels, counts.type, "facet-type"),
      checkboxes("status", "status", S.statuses, counts.status, "facet-status"),
      S.splits.length ? checkboxes("split", "split", splitLabels, counts.split, "facet-split") : null,
      originBoxes(counts.origins),
      rewardRange(),
      choice("parse failures", "parse", [["any", "any"], ["yes", "some", counts.parse[1]], ["no", "none", counts.parse[0]]], null, "parse"),
      choice("quarantined rows", "quar", [["any", "any"], ["yes", "some", counts.quar[1]], ["no", "none", counts.quar[0]]], null, "quarantined"),
      choice("image", "image", [["any", "any"], ["yes", "fails to render", counts.image[1]], ["no", "renders", counts.image[0]]], null, "image"),
      choice("reviewed", "reviewed", [["any", "any"], ["yes", "yes", counts.reviewed[1]], ["no", "no", counts.reviewed[0]]], null, "reviewed"),
      choice("sort", "sort", [["task", "run order"], ["reward_asc", "best reward, lowest first"],
        ["reward_desc", "best reward, highest first"], ["length", "longest list first"]], null, "sort"),
      P.el("button", { onclick: function () {
        Object.assign(state, { type: null, status: null, split: null, origins: [], lo: 0, hi: 1, parse: "any", quar: "any",
          image: "any", reviewed: "any", page: 0 });
        refresh();
      } }, "Reset filters")
    );
  }

  // --- the rows of one page
  function listBars(summary) {
    const box = P.el("div", { class: "bars" });
    summary.forEach(function (item) {
      const origin = S.origins[item[0]] || "?";
      const reward = item[1];
      const height = reward === null ? 100 : Math.max(4, Math.round(reward * 100));
      box.append(P.el("span", { class: "bar" + (reward === null ? " unscored" : ""), title: origin + ": " + P.fmt(reward),
        style: { height: height + "%", background: P.colour(S, origin) } }));
    });
    return box;
  }

  function rowNode(i, row) {
    const href = "task.html#p=" + i;
    const notes = [];
    if (F.pfail[i]) notes.push(P.el("span", { class: "tag warn", text: F.pfail[i] + " parse failure" + (F.pfail[i] > 1 ? "s" : "") }));
    if (F.quar[i]) notes.push(P.el("span", { class: "tag bad", text: F.quar[i] + " quarantined" }));
    if (store.has(F.ids[i])) {
      const entry = store.get(F.ids[i]);
      notes.push(P.el("span", { class: "tag review", "data-testid": "reviewed-tag",
        text: "reviewed" + (entry.decision === "drop" ? ": drop" : entry.order ? ": reordered" : "") }));
    }
    const status = S.statuses[F.status[i]];
    return P.el("tr", { "data-pos": String(i), class: "status-" + status },
      P.el("td", { class: "thumb" }, P.el("a", { href: href }, P.image(row[1], row[2], { loading: "lazy", width: "64" }, "image"))),
      P.el("td", { class: "pos" }, P.el("a", { href: href, text: String(i) })),
      P.el("td", {}, P.el("div", { class: "type", text: S.task_types[F.type[i]] || "other" }),
        P.el("div", { class: "status muted", text: status }),
        S.splits.length ? P.el("div", { class: "muted", text: S.splits[F.split[i]] || "" }) : null),
      P.el("td", { class: "prompt" }, P.el("a", { href: href, text: P.visible(row[0]) }),
        row[4] !== null ? P.el("div", { class: "best muted", text: "→ " + P.visible(row[4]) }) : null),
      P.el("td", {}, listBars(row[3])),
      P.el("td", {}, notes)
    );
  }

  let renderToken = 0;
  function renderRows(shown) {
    const token = ++renderToken;
    const pages = Math.max(1, Math.ceil(shown.length / PER_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const slice = shown.slice(state.page * PER_PAGE, (state.page + 1) * PER_PAGE);
    const files = Array.from(new Set(slice.map(function (i) { return Math.floor(i / S.rows_per_page); })));
    renderPager(pages);
    Promise.all(files.map(function (k) { return P.load("rows/page-" + String(k).padStart(5, "0")); })).then(function () {
      if (token !== renderToken) return;
      const body = document.querySelector("#rows tbody");
      body.replaceChildren.apply(body, slice.map(function (i) {
        const k = Math.floor(i / S.rows_per_page);
        const data = P.loaded("rows/page-" + String(k).padStart(5, "0"));
        return rowNode(i, data[i - k * S.rows_per_page]);
      }));
      document.body.setAttribute("data-ready", "1");
    }).catch(P.showError);
  }

  function renderPager(pages) {
    const pager = document.getElementById("pager");
    const go = function (p) { return function () { state.page = p; refresh(); }; };
    pager.replaceChildren(
      P.el("button", { onclick: go(0), disabled: state.page === 0 }, "«"),
      P.el("button", { onclick: go(state.page - 1), disabled: state.page === 0, "data-testid": "prev-page" }, "‹"),
      P.el("span", { "data-testid": "page", text: " page " + (state.page + 1) + " of " + pages + " " }),
      P.el("button", { onclick: go(state.page + 1), disabled: state.page >= pages - 1, "data-testid": "next-page" }, "›"),
      P.el("button", { onclick: go(pages - 1), disabled: state.page >= pages - 1 }, "»")
    );
  }

  function refresh() {
    const result = evaluate();
    document.getElementById("count").replaceChildren(
      P.el("b", { "data-testid": "n-shown", text: String(result.shown.length) }), " of " + N + " tasks");
    renderFilters(result.counts);
    renderRows(result.shown);
    writeHash();
  }

  function legend() {
    const box = document.getElementById("legend");
    box.replaceChildren.apply(box, S.origins.map(function (o) {
      return P.el("span", { class: "legend-item", title: S.meanings[o] },
        P.el("span", { class: "chip", style: { background: P.colour(S, o) } }), " " + o);
    }));
  }

  function start() {
    P.load("summary").then(function (summary) {
      S = summary;
      document.getElementById("run-name").textContent = S.run + " · " + S.n_tasks + " tasks · " + S.counts.lists + " lists · " +
        S.counts.pairs + " pairs · " + S.counts.groups + " groups";
      document.getElementById("nav-quarantine").textContent = "Quarantine (" + S.quarantine.n + ")";
      if (!S.eval.length) document.getElementById("nav-eval").remove();
      store = P.reviewStore(S);
      P.reviewBar(S, store);
      store.onChange(refresh);
      legend();
      return P.load("facets");
    }).then(function (facets) {
      F = { ids: facets.ids, best: {} };
      for (const key of ["type", "split", "status", "n", "pfail", "quar", "imgerr"]) F[key] = P.codes(facets[key]);
      for (const o of S.origins) F.best[o] = P.codes(facets.best[o]);
      N = F.ids.length;
      totals.type = new Array(S.task_types.length + 1).fill(0);
      for (let i = 0; i < N; i++) totals.type[F.type[i]]++;
      readHash();
      refresh();
    }).catch(P.showError);
  }

  start();
})();
