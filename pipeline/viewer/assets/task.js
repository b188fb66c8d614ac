// One task: the image with the ground-truth boxes and every response's parsed boxes, the ranked list with
// reward bars and reward detail, hallucinations as a diff against the ground truth, the pairs and groups,
// what did not make the list, the quarantine rows, and the review panel (flags, keep/drop, reorder).
// Address: task.html#p=<position in the run> (or #id=<task_id>); only the chunk holding the task is loaded.
"use strict";

(function () {
  const P = window.PERPO;
  let S, store, rec, pos;
  let order = null; // the person's order (cand_ids), or null for rank's
  const hidden = new Set(); // origins whose boxes are hidden

  function chunkName(p) { return "tasks/chunk-" + String(Math.floor(p / S.tasks_per_chunk)).padStart(5, "0"); }

  function locate() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    if (params.has("p")) return Promise.resolve(Number(params.get("p")));
    if (params.has("id")) {
      return P.load("facets").then(function (f) {
        const p = f.ids.indexOf(params.get("id"));
        if (p < 0) throw new Error("no task " + params.get("id") + " in this run");
        return p;
      });
    }
    return Promise.resolve(0);
  }

  function section(title, testid) {
    return P.el("section", { class: "card", "data-testid": testid }, P.el("h3", { text: title }));
  }

  // --- the image and its boxes
  function boxRect(box, colour, cls, dashed) {
    const r = P.svg("rect", { x: box[0], y: box[1], width: Math.max(0, box[2] - box[0]), height: Math.max(0, box[3] - box[1]),
      fill: "none", stroke: colour, "stroke-width": "2", "vector-effect": "non-scaling-stroke", class: cls });
    if (dashed) r.setAttribute("stroke-dasharray", "5 3");
    return r;
  }

  function figure() {
    const fig = P.el("figure", { class: "task-figure", "data-testid": "figure" });
    const frame = P.el("div", { class: "frame" });
    frame.append(P.image(rec.image.src, rec.image.error, { "data-testid": "task-image" }, "image"));
    if (rec.image.src) {
      const overlay = P.svg("svg", { viewBox: "0 0 " + rec.width + " " + rec.height, preserveAspectRatio: "none",
        class: "boxes", "data-testid": "boxes" });
      rec.gt_boxes.forEach(function (b) {
        overlay.append(boxRect(b, "#ffffff", "gt-halo", false));
        overlay.append(boxRect(b, P.colour(S, "annotation"), "gt-box", true));
      });
      const drawn = currentList().length ? currentList() : rec.others;
      drawn.forEach(function (c) {
        (c.boxes || []).forEach(function (b) {
          const r = boxRect(b, P.colour(S, c.origin), "cand-box origin-" + c.origin, false);
          r.setAttribute("data-cand", c.cand_id);
          if (hidden.has(c.origin)) r.style.display = "none";
          overlay.append(r);
        });
      });
      frame.append(overlay);
    }
    fig.append(frame);
    const toggles = P.el("div", { class: "legend" });
    ["annotation"].concat(S.origins).forEach(function (o) {
      const input = P.el("input", { type: "checkbox", checked: !hidden.has(o) });
      input.addEventListener("change", function () {
        if (input.checked) hidden.delete(o); else hidden.add(o);
        const sel = o === "annotation" ? ".gt-box, .gt-halo" : ".origin-" + o;
        document.querySelectorAll(sel).forEach(function (n) { n.style.display = input.checked ? "" : "none"; });
      });
      toggles.append(P.el("label", { class: "legend-item", title: S.meanings[o] }, input, " ",
        P.el("span", { class: "chip" + (o === "annotation" ? " dashed" : ""), style: { borderColor: P.colour(S, o),
          background: o === "annotation" ? "transparent" : P.colour(S, o) } }), " " + (o === "annotation" ? "ground-truth boxes" : o)));
    });
    fig.append(P.el("figcaption", {}, rec.width + "×" + rec.height + " px", toggles));
    return fig;
  }

  function truth() {
    const box = section("prompt and ground truth", "truth");
    box.append(P.el("div", { class: "prompt", text: P.visible(rec.prompt) }));
    const dl = P.el("dl", {});
    const add = function (k, v) { if (v !== null && v !== undefined && v !== "") dl.append(P.el("dt", { text: k }), P.el("dd", { text: v })); };
    add("answer", rec.answer);
    if (rec.answers && rec.answers.length > 1) add("annotator answers", rec.answers.join(" · "));
    if (rec.choices && rec.choices.length) add("choices", rec.choices.map(function (c, i) { return String.fromCharCode(65 + i) + ". " + c; }).join("  "));
    if (rec.gt_boxes.length) add("boxes", rec.gt_boxes.map(function (b) { return "[" + b.map(function (v) { return Math.round(v); }).join(", ") + "]"; }).join(" "));
    add("task id", rec.id);
    add("status", rec.status + (rec.reason ? " (" + rec.reason + ")" : ""));
    if (rec.split) add("split", rec.split);
    add("source", rec.source);
    add("meta", rec.meta);
    box.append(dl);
    return box;
  }

  // --- the ranked list
  function currentList() {
    if (!order) return rec.list;
    const byId = {};
    rec.list.concat(rec.others).forEach(function (c) { byId[c.cand_id] = c; });
    return order.filter(function (id) { return id in byId; }).map(function (id) { return byId[id]; });
  }

  function detailText(c) {
    const d = c.detail || {};
    const parts = [];
    if (c.kind === "iou") {
      (d.matches || []).forEach(function (m, k) { parts.push("box " + m[0] + " ↔ gt " + m[1] + ": IoU " + P.fmt((d.ious || [])[k])); });
      parts.push(d.n_pred + " predicted / " + d.n_gt + " ground-truth box(es)" + (d.format && d.format !== "none" ? ", read as " + d.format : ""));
    } else if (c.kind === "ocr" || c.kind === "anls") {
      parts.push("edit distance " + d.edit_distance + " (normalized " + P.fmt(d.normalized_distance) + ", " + d.metric + ")");
    } else if (c.kind === "vqa") {
      if (d.mode === "choice") parts.push("choice " + (d.choice || "none") + ", correct " + d.correct + " (" + d.rule + ")");
      else parts.push("matched " + d.matches + " of " + d.n_answers + " annotator answer(s) as “" + (d.normalized || "") + "”");
    }
    if (d.reason) parts.push(d.reason);
    return parts.join(" · ");
  }

  function textNode(c) {
    if (c.diff) {
      const box = P.el("div", { class: "text diff", "data-testid": "diff", title: "difference from the ground-truth answer" });
      c.diff.forEach(function (op) {
        const tag = op[0] === "=" ? "span" : op[0] === "-" ? "del" : "ins";
        box.append(P.el(tag, { text: P.visible(op[1]) }));
      });
      return box;
    }
    return P.el("div", { class: "text", text: P.visible(c.text) });
  }

  function rewardBar(c) {
    const r = c.reward === undefined ? c.score : c.reward;
    const box = P.el("div", { class: "reward" });
    box.append(P.el("div", { class: "track" }, P.el("div", { class: "fill" + (r === null ? " unscored" : ""),
      style: { width: (r === null ? 100 : Math.round(r * 100)) + "%", background: P.colour(S, c.origin) } })));
    box.append(P.el("span", { class: "value", text: r === null ? "no reward" : P.fmt(r) }));
    if (c.score !== undefined && c.score !== r && c.score !== null) box.append(P.el("span", { class: "muted small", text: " (scored " + P.fmt(c.score) + ")" }));
    return box;
  }

  function responseRow(c, i, n, reorderable) {
    const moves = reorderable ? P.el("td", { class: "moves" },
      P.el("button", { title: "move up", "data-testid": "up-" + i, disabled: i === 0, onclick: function () { move(i, -1); } }, "↑"),
      P.el("button", { title: "move down", "data-testid": "down-" + i, disabled: i === n - 1, onclick: function () { move(i, 1); } }, "↓")) : P.el("td");
    const extra = [];
    if (c.distorted_image) extra.push(P.el("div", { class: "distorted" },
      P.image(c.distorted_image.src, c.distorted_image.error, { width: "96", loading: "lazy" }, "distorted image"),
      P.el("div", { class: "muted small", text: (c.distortion && c.distortion.label) || "" })));
    else if (c.distortion && c.distortion.label) extra.push(P.el("div", { class: "muted small", text: "answered on: " + c.distortion.label }));
    if (c.distortion && c.distortion.kinds) extra.push(P.el("div", { class: "muted small", text: "injected: " + c.distortion.kinds.join(", ") }));
    if (c.why) extra.push(P.el("div", { class: "tag", text: c.why }));
    const row = P.el("tr", { class: "response", "data-testid": "response", "data-cand": c.cand_id },
      P.el("td", { class: "pos", text: String(i + 1) }),
      P.el("td", {}, P.el("span", { class: "chip", style: { background: P.colour(S, c.origin) } }), " ", P.el("span", { class: "origin", text: c.origin })),
      P.el("td", {}, rewardBar(c)),
      P.el("td", { class: "answer" }, textNode(c),
        P.el("div", { class: "detail muted small", "data-testid": "detail", text: detailText(c) }),
        c.parse_ok === false ? P.el("span", { class: "tag warn", text: "parse failed" }) : null,
        c.finish === "length" ? P.el("span", { class: "tag", text: "cut at max tokens" }) : null),
      P.el("td", {}, extra),
      moves);
    row.addEventListener("mouseenter", function () { highlight(c.cand_id, true); });
    row.addEventListener("mouseleave", function () { highlight(c.cand_id, false); });
    return row;
  }

  function highlight(candId, on) {
    document.querySelectorAll(".cand-box").forEach(function (n) {
      const mine = n.getAttribute("data-cand") === candId;
      n.classList.toggle("dim", on && !mine);
      n.classList.toggle("hl", on && mine);
    });
  }

  function listSection() {
    const list = currentList();
    const box = section(order ? "the list, in your order (rank will keep it)" : "ranked list (best first)", "ranked-list");
    if (!list.length) {
      box.append(P.el("p", { class: "muted", text: "No list: " + (rec.reason || rec.status) + ". Its scored candidates are below." }));
      return box;
    }
    const table = P.el("table", { class: "responses" });
    list.forEach(function (c, i) { table.append(responseRow(c, i, list.length, true)); });
    box.append(table);
    return box;
  }

  function move(i, delta) {
    const ids = currentList().map(function (c) { return c.cand_id; });
    const j = i + delta;
    const tmp = ids[i]; ids[i] = ids[j]; ids[j] = tmp;
    const rankOrder = rec.list.map(function (c) { return c.cand_id; });
    order = ids.join("\u0000") === rankOrder.join("\u0000") ? null : ids;
    saveReview();
    render();
  }

  // --- pairs, groups, the rest
  function label(p) {
    if (typeof p === "number" && rec.list[p]) return "#" + (p + 1) + " " + rec.list[p].origin;
    return String(p);
  }

  function pairsSection() {
    const box = section("pairs and groups made from this list (by rank)", "pairs");
    if (!rec.pairs.length && !rec.groups.length) {
      box.append(P.el("p", { class: "muted", text: "none" }));
      return box;
    }
    const ul = P.el("ul", {});
    rec.pairs.forEach(function (p) {
      ul.append(P.el("li", { text: "pair: chosen " + label(p.chosen) + " over rejected " + label(p.rejected) +
        (p.margin !== null ? " (margin " + P.fmt(p.margin) + ")" : "") }));
    });
    rec.groups.forEach(function (g) {
      ul.append(P.el("li", { text: "group: chosen [" + g.chosen.map(label).join(", ") + "] over rejected [" + g.rejected.map(label).join(", ") + "]" }));
    });
    box.append(ul);
    return box;
  }

  function othersSection() {
    if (!rec.others.length) return null;
    const box = section("scored but not in the list", "others");
    const table = P.el("table", { class: "responses" });
    rec.others.forEach(function (c, i) { table.append(responseRow(Object.assign({}, c, { reward: c.score }), i, rec.others.length, false)); });
    box.append(table);
    return box;
  }

  function quarantineSection() {
    if (!rec.quarantine.length) return null;
    const box = section("quarantined rows of this task", "task-quarantine");
    const ul = P.el("ul", {});
    rec.quarantine.forEach(function (q) {
      ul.append(P.el("li", {}, P.el("b", { text: q.stage + ": " + q.reason }), " " + (q.message || "") + " ", P.el("span", { class: "muted", text: q.row_ref })));
    });
    box.append(ul);
    return box;
  }

  // --- the review panel
  function saveReview() {
    const entry = readPanel();
    entry.order = order;
    store.set(rec.id, entry);
  }

  function readPanel() {
    const panel = document.getElementById("review-panel");
    const old = store.get(rec.id) || {};
    if (!panel) return { decision: old.decision || "keep", flags: old.flags || [], note: old.note || "" };
    return {
      decision: panel.querySelector("input[name=decision]:checked").value,
      flags: Array.from(panel.querySelectorAll("input[name=flag]:checked")).map(function (x) { return x.value; }),
      note: panel.querySelector("textarea").value,
    };
  }

  function reviewSection() {
    const entry = store.get(rec.id) || { decision: "keep", flags: [], note: "" };
    const box = P.el("section", { class: "card review", id: "review-panel", "data-testid": "review-panel" }, P.el("h3", { text: "your review" }));
    const flags = P.el("div", {});
    S.review_flags.forEach(function (f) {
      const input = P.el("input", { type: "checkbox", name: "flag", value: f, checked: (entry.flags || []).includes(f), "data-testid": "flag-" + f });
      input.addEventListener("change", function () {
        if (f === "bad_ground_truth" && input.checked) box.querySelector("input[value=drop]").checked = true; // proposed, not forced
        saveReview();
        render();
      });
      flags.append(P.el("label", {}, input, " " + f.replace(/_/g, " ")), " ");
    });
    const decisions = P.el("div", {});
    S.decisions.forEach(function (d) {
      const input = P.el("input", { type: "radio", name: "decision", value: d, checked: (entry.decision || "keep") === d, "data-testid": "decision-" + d });
      input.addEventListener("change", function () { saveReview(); render(); });
      decisions.append(P.el("label", {}, input, " " + d + " the list"), " ");
    });
    const note = P.el("textarea", { rows: "2", placeholder: "note (kept in review.jsonl)" });
    note.value = entry.note || "";
    note.addEventListener("change", saveReview);
    const state = store.has(rec.id)
      ? "saved in this browser; download review.jsonl and set [rank] review to apply it"
      : "not reviewed";
    box.append(flags, decisions,
      P.el("div", {}, order ? P.el("button", { "data-testid": "reset-order", onclick: function () { order = null; saveReview(); render(); } }, "Back to rank's order") : null,
        P.el("span", { class: "muted small", text: " ↑ ↓ beside each response reorder the list" })),
      note, P.el("div", { class: "muted small", "data-testid": "review-state", text: state }));
    return box;
  }

  function nav() {
    document.getElementById("where").textContent = "task " + (pos + 1) + " of " + S.n_tasks;
    const prev = document.getElementById("prev"), next = document.getElementById("next");
    if (pos > 0) prev.href = "#p=" + (pos - 1); else prev.removeAttribute("href");
    if (pos < S.n_tasks - 1) next.href = "#p=" + (pos + 1); else next.removeAttribute("href");
  }

  function render() {
    const main = document.getElementById("task");
    const head = P.el("h2", { "data-testid": "task-title" }, P.el("span", { class: "type", text: rec.type }), " ",
      P.el("span", { class: "muted", text: rec.id }), " ", P.el("span", { class: "tag status-" + rec.status, text: rec.status }));
    P.replace(main, head, P.el("div", { class: "task-top" }, figure(), P.el("div", { class: "task-side" }, truth(), reviewSection())),
      listSection(), pairsSection(), othersSection(), quarantineSection());
    nav();
    document.title = rec.type + " " + rec.id + " · perpo-pipeline viewer";
    document.body.setAttribute("data-ready", "1");
  }

  function show() {
    document.body.removeAttribute("data-ready");
    locate().then(function (p) {
      pos = Math.max(0, Math.min(S.n_tasks - 1, p));
      return P.load(chunkName(pos));
    }).then(function (chunk) {
      rec = chunk[pos % S.tasks_per_chunk];
      if (!rec) throw new Error("task " + pos + " is not in its data file");
      const entry = store.get(rec.id);
      order = entry && entry.order ? entry.order : null;
      render();
    }).catch(P.showError);
  }

  P.load("summary").then(function (summary) {
    S = summary;
    document.getElementById("run-name").textContent = S.run;
    store = P.reviewStore(S);
    P.reviewBar(S, store);
    window.addEventListener("hashchange", show);
    show();
  }).catch(P.showError);
})();
