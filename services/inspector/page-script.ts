/**
 * The inspector page's script, shipped inline as plain browser JavaScript (no framework, no
 * bundler, nothing fetched from elsewhere). It keeps the job list current from `/events`, shows a
 * job's charts (SVG rendered by the server from the machines' definitions), draws the rank grid on
 * a canvas (one cell per rank, so 10,000+ ranks stay cheap) and drives the replay scrubber.
 * State the tests read is exposed as data attributes (`data-state`, `data-rank-state`, `data-at`).
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  "use strict";
  var FINAL = { COMPLETED: 1, FAILED: 1, CANCELLED: 1, TIMEOUT: 1, NODE_FAIL: 1 };
  var LIVE_KEYS = ["pending", "launching", "running", "stopping"];
  var LIVE_COLORS = { pending: "#b0bec5", launching: "#90caf9", running: "#1e88e5", stopping: "#fb8c00" };
  var BAD_COLORS = ["#e53935", "#c62828", "#d84315", "#ad1457", "#b71c1c", "#ef6c00"];
  var FALLBACK_LIST_MAX = 1024;
  var S = {
    jobs: new Map(), job: null, step: null, rank: null, es: null, detail: null, mode: "live", at: null,
    total: 0, replay: null, charts: new Map(), refreshTimer: null, pollTimer: null, scrubTimer: null,
    listTimer: null, timelineTimer: null, timelineAt: 0, timelineSeq: 0, timelineShown: 0, loadSeq: 0, shownSeq: 0, grid: null, timelineKey: "", taskEvents: null, loading: null, loadAgain: false, timelineLoading: null, timelineAgain: false, ready: false
  };

  function $(sel, root) { return (root || document).querySelector(sel); }
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null) return;
        if (k === "text") el.textContent = v;
        else if (k === "class") el.className = v;
        else if (k.indexOf("on") === 0) el.addEventListener(k.slice(2), v);
        else if (k === "data") Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
        else el.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function api(path) {
    return fetch(path, { headers: { accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error((body && body.error && body.error.message) || r.statusText);
        return body;
      });
    });
  }
  function problem(err) { var p = $("#problem"); if (p) p.textContent = err ? String(err.message || err) : ""; }
  function time(ms) { return ms === undefined || ms === null ? "-" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""); }
  function since(ms, base) { return ms === undefined || base === undefined ? "" : "+" + ((ms - base) / 1000).toFixed(3) + " s"; }

  // ---- id sets and group keys ---------------------------------------------------------------
  function parseIds(text) {
    var out = [];
    if (!text) return out;
    text.split(",").forEach(function (part) {
      var ab = part.split("-");
      var a = Number(ab[0]);
      out.push([a, ab.length > 1 ? Number(ab[1]) : a]);
    });
    return out;
  }
  function countIds(text) { return parseIds(text).reduce(function (n, r) { return n + r[1] - r[0] + 1; }, 0); }
  function coarse(key) {
    if (LIVE_KEYS.indexOf(key) >= 0) return key;
    return key === "exited:0" ? "ok" : "failed";
  }
  function colorOf(key) {
    if (LIVE_COLORS[key]) return LIVE_COLORS[key];
    if (key === "exited:0") return "#43a047";
    if (key.indexOf("exited:") === 0) return BAD_COLORS[Number(key.slice(7)) % BAD_COLORS.length];
    if (key.indexOf("signaled:") === 0) return key.indexOf(":core") > 0 ? "#4a148c" : "#8e24aa";
    if (key.indexOf("launch_failed") === 0) return "#6d4c41";
    if (key === "node_lost") return "#263238";
    return "#9e9e9e";
  }
  function keyRank(k) {
    var i = LIVE_KEYS.indexOf(k);
    if (i >= 0) return i;
    return k === "exited:0" ? 10 : 20;
  }
  function keyOrder(a, b) { return keyRank(a) - keyRank(b) || a.localeCompare(b, "en", { numeric: true }); }
  function outcomeText(o) {
    if (!o) return "";
    if (o.kind === "exited") return "exited with code " + o.code;
    if (o.kind === "signaled") return "killed by signal " + o.signal + (o.coreDumped ? " (core dumped)" : "");
    if (o.kind === "launch_failed") return "launch failed (" + o.code + "): " + o.error;
    return "node lost";
  }

  // ---- routing ------------------------------------------------------------------------------
  function parseRoute() {
    var m = /^#\/jobs\/([A-Za-z0-9_-]+)(?:\/steps\/([A-Za-z0-9_-]+))?(?:\/tasks\/(\d+))?$/.exec(location.hash);
    return m ? { job: m[1], step: m[2] || null, rank: m[3] !== undefined ? Number(m[3]) : null } : { job: null, step: null, rank: null };
  }
  function go(job, step, rank) {
    var target = "#/jobs/" + job;
    if (step !== null && step !== undefined) target += "/steps/" + step;
    if (rank !== null && rank !== undefined) target += "/tasks/" + rank;
    if (location.hash !== target) location.hash = target;
  }
  function onRoute() {
    var r = parseRoute();
    if (r.job !== S.job) {
      S.job = r.job; S.step = r.step; S.rank = r.rank; S.detail = null; S.mode = "live"; S.at = null; S.replay = null; S.ready = false;
      document.body.dataset.ready = "0";
      S.timelineKey = "";
      if (S.pollTimer) { clearInterval(S.pollTimer); S.pollTimer = null; }
      S.timelineAt = 0;
      connect(r.job);
      renderJobs();
      if (r.job) { buildDetail(); loadJob(); } else showPlaceholder();
      return;
    }
    var changed = r.step !== S.step || r.rank !== S.rank;
    S.step = r.step; S.rank = r.rank;
    if (changed && S.detail) { render(); if (S.mode === "replay") scrubTo(S.at); }
  }

  // ---- live updates -------------------------------------------------------------------------
  function setConn(ok, text) {
    var c = $("#conn");
    c.dataset.connected = ok ? "1" : "0";
    $("#conn-text").textContent = text || (ok ? "live" : "reconnecting…");
  }
  function connect(job) {
    if (S.es) S.es.close();
    var es = new EventSource("/events" + (job ? "?job=" + encodeURIComponent(job) : ""));
    S.es = es;
    es.onopen = function () { setConn(true); };
    es.onerror = function () { setConn(false); };
    es.addEventListener("jobs", function (e) {
      JSON.parse(e.data).jobs.forEach(mergeSummary);
      problem(null);
      renderJobs();
    });
    es.addEventListener("problem", function (e) { problem(JSON.parse(e.data)); });
    es.addEventListener("job", function (e) { onJobMessage(JSON.parse(e.data).message); });
    es.addEventListener("task", function (e) {
      // Task events can come by the thousand: a large step's view follows them at most every second.
      var d = JSON.parse(e.data);
      var big = S.detail && S.detail.view.ntasks > 1000;
      if (d.event.job === S.job) scheduleRefresh(big ? 1000 : 150);
    });
  }
  function mergeSummary(s) {
    var cur = S.jobs.get(s.jobId);
    if (!cur || (FINAL[s.state] && !FINAL[cur.state]) || (!FINAL[cur.state] && s.at >= cur.at)) S.jobs.set(s.jobId, s);
    else if (cur && !cur.name && s.name) { cur.name = s.name; cur.ntasks = s.ntasks; cur.user = s.user; cur.submittedAt = s.submittedAt; }
  }
  function onJobMessage(m) {
    if (m.type === "job.state" && m.step === undefined) {
      var cur = S.jobs.get(m.job);
      if (!cur) {
        S.jobs.set(m.job, { jobId: m.job, name: "", user: "", state: m.state, reason: m.reason, exitCode: m.exitCode, ntasks: null, submittedAt: m.at, at: m.at });
        scheduleList();
      } else if (!FINAL[cur.state] && (FINAL[m.state] || m.at >= cur.at)) {
        cur.state = m.state; cur.reason = m.reason; cur.exitCode = m.exitCode; cur.at = m.at;
        if (FINAL[m.state]) cur.endedAt = m.at;
      }
      renderJobs();
    }
    if (m.job === S.job) scheduleRefresh(60);
  }
  function scheduleList() {
    if (S.listTimer) return;
    S.listTimer = setTimeout(function () {
      S.listTimer = null;
      api("/api/jobs").then(function (d) { d.jobs.forEach(mergeSummary); renderJobs(); }, problem);
    }, 250);
  }
  function scheduleRefresh(ms) {
    if (S.refreshTimer) return;
    S.refreshTimer = setTimeout(function () { S.refreshTimer = null; loadJob(); }, ms);
  }

  // ---- job list -----------------------------------------------------------------------------
  function renderJobs() {
    var body = $("#jobs tbody");
    clear(body);
    var list = Array.from(S.jobs.values()).sort(function (a, b) {
      return (b.submittedAt || 0) - (a.submittedAt || 0) || b.jobId.localeCompare(a.jobId, "en", { numeric: true });
    });
    list.forEach(function (j) {
      body.appendChild(h("tr", { data: { job: j.jobId, state: j.state }, class: j.jobId === S.job ? "selected" : "", onclick: function () { go(j.jobId); } },
        h("td", { text: j.jobId }),
        h("td", { text: j.name || "" }),
        h("td", null, h("span", { class: "badge", data: { state: j.state }, text: j.state })),
        h("td", { text: j.reason }),
        h("td", { text: j.exitCode }),
        h("td", { text: j.ntasks === null || j.ntasks === undefined ? "" : j.ntasks })));
    });
    $("#jobs-empty").style.display = list.length ? "none" : "";
  }

  // ---- job view -----------------------------------------------------------------------------
  function showPlaceholder() {
    var d = clear($("#detail"));
    d.dataset.job = "";
    d.appendChild(h("div", { class: "card empty", id: "placeholder", text: "Select a job." }));
  }
  function buildDetail() {
    var d = clear($("#detail"));
    d.dataset.job = S.job;
    d.dataset.mode = "live";
    d.appendChild(h("div", { class: "card", id: "job-head" }, h("h2", { id: "job-title", text: "Job " + S.job }), h("div", { id: "job-facts", class: "facts-line" })));
    d.appendChild(h("div", { class: "card", id: "notice", hidden: "" }));
    d.appendChild(h("div", { class: "card" },
      h("div", { class: "charts" },
        h("div", null, h("div", { class: "caption", id: "chart-job-caption", text: "job machine" }), h("div", { class: "chart", id: "chart-job", data: { chart: "job" } })),
        h("div", null, h("div", { class: "tabs", id: "step-tabs" }), h("div", { class: "caption", id: "chart-step-caption", text: "step machine" }), h("div", { class: "chart", id: "chart-step", data: { chart: "step" } })))));
    var canvas = h("canvas", { id: "grid-canvas", width: "10", height: "10", role: "img", "aria-label": "task states by rank" });
    canvas.addEventListener("mousemove", gridHover);
    canvas.addEventListener("mouseleave", function () { $("#grid-tip").style.display = "none"; });
    canvas.addEventListener("click", gridClick);
    d.appendChild(h("div", { class: "card" }, h("h3", { id: "grid-title", text: "Tasks" }), h("div", { class: "grid-wrap" }, canvas, h("div", { id: "grid-tip" })), h("div", { class: "legend", id: "legend" })));
    d.appendChild(h("div", { class: "card", id: "summary" }, h("h3", { text: "Task exit summary (as published)" }), h("pre", { id: "summary-text" })));
    var range = h("input", { type: "range", id: "scrubber", min: "0", max: "0", value: "0", step: "1", "aria-label": "event index" });
    range.addEventListener("input", function () { scrubTo(Number(range.value)); });
    d.appendChild(h("div", { class: "card", id: "replay" },
      h("h3", { text: "Replay recorded events through the machines" }),
      h("div", { class: "scrub" }, h("button", { id: "prev-btn", text: "◀", title: "previous event", onclick: function () { scrubTo(currentIndex() - 1); } }), range,
        h("button", { id: "next-btn", text: "▶", title: "next event", onclick: function () { scrubTo(currentIndex() + 1); } }),
        h("button", { id: "live-btn", text: "Live", onclick: goLive }), h("span", { class: "where", id: "where" })),
      h("div", { id: "replay-banner" })));
    d.appendChild(h("div", { class: "card" }, h("h3", { text: "Timeline (EVENTS and JOBS streams)" }), h("div", { id: "timeline" }, h("table", null, h("tbody")))));
    d.appendChild(h("div", { class: "card", id: "task", hidden: "" }));
  }
  function currentIndex() { return S.mode === "replay" ? S.at : S.total - 1; }
  function selectedStep() {
    var v = S.detail && S.detail.view;
    if (!v || !v.steps.length) return null;
    var id = S.step !== null ? S.step : v.steps[0].stepId;
    return v.steps.find(function (s) { return s.stepId === id; }) || v.steps[0];
  }

  function loadJob() {
    var job = S.job;
    if (!job) return;
    // One request at a time: a slow server gets one follow-up request, not a pile of them.
    if (S.loading === job) { S.loadAgain = true; return; }
    S.loading = job;
    var seq = ++S.loadSeq;
    var done = function () {
      if (S.loading !== job) return;
      S.loading = null;
      if (S.loadAgain) { S.loadAgain = false; if (S.job === job) loadJob(); }
    };
    api("/api/jobs/" + encodeURIComponent(job)).finally(done).then(function (d) {
      if (job !== S.job || seq < S.shownSeq) return;
      S.shownSeq = seq;
      S.detail = d;
      problem(null);
      mergeSummary(summaryOfView(d.view));
      renderJobs();
      render();
      // The timeline (and the scrubber's range) follow at most every 2 s while the job lives.
      var live = !FINAL[d.view.state];
      if (!live || Date.now() - S.timelineAt > 2000) { S.timelineAt = Date.now(); loadTimeline(); }
      else if (!S.timelineTimer) S.timelineTimer = setTimeout(function () { S.timelineTimer = null; if (S.job === job) { S.timelineAt = Date.now(); loadTimeline(); } }, 2000);
      if (live && !S.pollTimer) S.pollTimer = setInterval(function () { if (S.job === job) scheduleRefresh(0); }, d.view.ntasks > 1000 ? 2000 : 1000);
      if (!live && S.pollTimer) { clearInterval(S.pollTimer); S.pollTimer = null; }
    }, function (err) { if (job === S.job) problem(err); });
  }
  function summaryOfView(v) {
    return { jobId: v.jobId, name: v.name, user: v.user, state: v.state, reason: v.reason, exitCode: v.exitCode,
      ntasks: v.ntasks, submittedAt: v.submittedAt, endedAt: v.endedAt,
      at: v.endedAt || v.startedAt || v.submittedAt };
  }

  function render() {
    var d = S.detail;
    if (!d) return;
    var v = d.view;
    var step = selectedStep();
    $("#detail").dataset.mode = S.mode;
    $("#detail").dataset.state = v.state;
    var title = clear($("#job-title"));
    append(title, ["Job " + v.jobId + " · " + v.name + " ", h("span", { class: "badge", id: "job-state", data: { state: v.state }, text: v.state })]);
    $("#job-facts").textContent = "user " + v.user + " · " + v.kind + " · Reason=" + v.reason + " ExitCode=" + v.exitCode + " DerivedExitCode=" + v.derivedExitCode +
      " · submitted " + time(v.submittedAt) + " · started " + time(v.startedAt) + " · ended " + time(v.endedAt) + (v.failedNodes.length ? " · FailedNode=" + v.failedNodes.join(",") : "");
    renderTabs(v, step);
    renderNotice(d, step);
    renderSummary(d, step);
    if (S.mode === "replay" && S.replay) renderReplay();
    else renderLive(d, step);
    renderTask();
  }
  function renderTabs(v, step) {
    var tabs = clear($("#step-tabs"));
    if (v.steps.length < 2) return;
    v.steps.forEach(function (s) {
      tabs.appendChild(h("button", { "aria-selected": step && s.stepId === step.stepId ? "true" : "false", text: "step " + s.stepId, onclick: function () { go(v.jobId, s.stepId, null); } }));
    });
  }
  function renderLive(d, step) {
    var v = d.view;
    showChart($("#chart-job"), "job", d.charts.job);
    $("#chart-job-caption").textContent = "job " + v.jobId + ": " + d.charts.job.join(",");
    if (step) {
      var active = d.charts.steps[step.stepId] || [];
      showChart($("#chart-step"), "step", active);
      $("#chart-step-caption").textContent = "step " + v.jobId + "." + step.stepId + ": " + active.join(",") + " (" + step.state + ")";
      drawGrid(step.ntasks, step.groups, "live", null);
      $("#grid-title").textContent = "Tasks of step " + v.jobId + "." + step.stepId + " (" + step.ntasks + ")";
    } else {
      $("#grid-title").textContent = "No step yet: the job is " + v.state + " (Reason=" + v.reason + ")";
    }
    updateScrubber();
  }
  function renderNotice(d, step) {
    var box = $("#notice");
    var first = d.notices.filter(function (n) { return n.message.type === "step.first_failure" && (!step || String(n.message.step) === step.stepId); })[0];
    clear(box);
    if (!first) { box.hidden = true; box.dataset.triggerRank = ""; return; }
    var t = first.message.trigger;
    box.hidden = false;
    box.dataset.triggerRank = String(t.rank);
    box.dataset.step = String(first.message.step);
    append(box, [h("h2", { text: "First failure in step " + first.message.job + "." + first.message.step + ": task " + t.rank + " on " + t.node + " " + outcomeText(t.outcome) }),
      h("div", { class: "facts-line", text: "at " + time(t.at) + ", published " + time(first.message.publishedAt) + " (" + (first.message.publishedAt - t.at) + " ms later)" }),
      h("pre", { text: first.lines.join("\n") })]);
  }
  function renderSummary(d, step) {
    var pre = $("#summary-text");
    var forStep = d.notices.filter(function (n) { return !step || String(n.message.step) === step.stepId; });
    var summary = forStep.filter(function (n) { return n.message.type === "step.summary"; })[0] || forStep[0];
    if (summary) { pre.textContent = summary.lines.join("\n"); return; }
    if (!step) { pre.textContent = ""; return; }
    pre.textContent = "No failure so far. Tasks by status:\n" + Object.keys(step.groups).sort(keyOrder).map(function (k) { return "  " + k + "  tasks " + step.groups[k]; }).join("\n");
  }

  // ---- charts -------------------------------------------------------------------------------
  function showChart(el, machine, active) {
    var url = "/api/charts/" + machine + ".svg?active=" + encodeURIComponent(active.join(","));
    el.dataset.active = active.join(",");
    if (el.dataset.src === url) return;
    el.dataset.src = url;
    var cached = S.charts.get(url);
    if (cached) { place(el, cached); return; }
    fetch(url).then(function (r) { return r.text(); }).then(function (svg) {
      S.charts.set(url, svg);
      if (el.dataset.src === url) place(el, svg);
    }, problem);
  }
  function place(el, svg) {
    el.innerHTML = svg;
    // Charts side by side share the row in proportion to their natural widths.
    var w = el.firstElementChild && Number(el.firstElementChild.getAttribute("width"));
    if (w && el.parentNode && el.parentNode.parentNode && el.parentNode.parentNode.classList.contains("charts")) el.parentNode.style.flex = w + " 1 0";
  }

  // ---- rank grid ----------------------------------------------------------------------------
  function drawGrid(ntasks, groups, mode, at) {
    var canvas = $("#grid-canvas");
    var wrap = canvas.parentNode;
    var width = Math.max(240, Math.min((wrap.clientWidth || 800) - 2, 1400));
    var keys = Object.keys(groups).sort(keyOrder);
    var idx = new Uint8Array(ntasks);
    idx.fill(255);
    keys.forEach(function (k, i) {
      parseIds(groups[k]).forEach(function (r) { for (var x = r[0]; x <= r[1] && x < ntasks; x++) idx[x] = i; });
    });
    var cell = Math.max(2, Math.min(28, Math.floor(Math.sqrt((width * 360) / ntasks))));
    var cols = Math.max(1, Math.min(ntasks, Math.floor(width / cell)));
    var rows = Math.ceil(ntasks / cols);
    var dpr = window.devicePixelRatio || 1;
    canvas.style.width = cols * cell + "px";
    canvas.style.height = rows * cell + "px";
    canvas.width = Math.ceil(cols * cell * dpr);
    canvas.height = Math.ceil(rows * cell * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fafafa";
    ctx.fillRect(0, 0, cols * cell, rows * cell);
    var gap = cell >= 6 ? 1 : 0;
    var colors = keys.map(colorOf);
    var last = -1;
    for (var r = 0; r < ntasks; r++) {
      var g = idx[r];
      if (g !== last) { ctx.fillStyle = g === 255 ? "#eeeeee" : colors[g]; last = g; }
      ctx.fillRect((r % cols) * cell, Math.floor(r / cols) * cell, cell - gap, cell - gap);
    }
    if (S.rank !== null && S.rank < ntasks) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = Math.max(1, Math.min(2, cell / 6));
      ctx.strokeRect((S.rank % cols) * cell + 0.5, Math.floor(S.rank / cols) * cell + 0.5, Math.max(1, cell - gap - 1), Math.max(1, cell - gap - 1));
      if (cell >= 14) { /* outline is enough */ }
    }
    if (cell >= 18 && ntasks <= 256) {
      ctx.font = Math.floor(cell * 0.45) + "px sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (var q = 0; q < ntasks; q++) {
        ctx.fillStyle = idx[q] === 255 || LIVE_KEYS.indexOf(keys[idx[q]]) === 0 ? "#263238" : "#fff";
        ctx.fillText(String(q), (q % cols) * cell + (cell - gap) / 2, Math.floor(q / cols) * cell + (cell - gap) / 2);
      }
    }
    S.grid = { cols: cols, cell: cell, ntasks: ntasks, idx: idx, keys: keys };
    canvas.dataset.ntasks = String(ntasks);
    canvas.dataset.mode = mode;
    canvas.dataset.at = at === null || at === undefined ? "" : String(at);
    canvas.dataset.groups = JSON.stringify(groups);
    // Fallback content of the canvas: each rank and its state, for assistive technology and tests.
    clear(canvas);
    if (ntasks <= FALLBACK_LIST_MAX) {
      var ol = h("ol", { class: "ranks" });
      for (var k = 0; k < ntasks; k++) {
        var key = idx[k] === 255 ? "unknown" : keys[idx[k]];
        ol.appendChild(h("li", { data: { rank: String(k), rankState: coarse(key), group: key }, text: "rank " + k + ": " + key }));
      }
      canvas.appendChild(ol);
    } else {
      canvas.appendChild(h("p", { text: ntasks + " tasks: " + keys.map(function (k2) { return k2 + " " + countIds(groups[k2]); }).join(", ") }));
    }
    var legend = clear($("#legend"));
    keys.forEach(function (k3) {
      var ids = groups[k3];
      legend.appendChild(h("span", { data: { key: k3, count: String(countIds(ids)) } }, h("span", { class: "sw", style: "background:" + colorOf(k3) }), h("b", { text: k3 }), " " + countIds(ids) + " ",
        h("span", { class: "ids", text: ids.length > 48 ? ids.slice(0, 45) + "…" : ids })));
    });
    canvas.dataset.drawn = String(ntasks);
    if (!S.ready) { S.ready = true; document.body.dataset.ready = "1"; }
  }
  function rankAt(ev) {
    var g = S.grid;
    if (!g) return null;
    var rect = ev.target.getBoundingClientRect();
    var col = Math.floor((ev.clientX - rect.left) / g.cell);
    var row = Math.floor((ev.clientY - rect.top) / g.cell);
    if (col < 0 || col >= g.cols) return null;
    var r = row * g.cols + col;
    return r >= 0 && r < g.ntasks ? r : null;
  }
  function gridHover(ev) {
    var r = rankAt(ev);
    var tip = $("#grid-tip");
    if (r === null) { tip.style.display = "none"; return; }
    var g = S.grid;
    tip.textContent = "rank " + r + ": " + (g.idx[r] === 255 ? "unknown" : g.keys[g.idx[r]]);
    tip.style.display = "block";
    tip.style.left = ev.offsetX + 12 + "px";
    tip.style.top = ev.offsetY + 12 + "px";
  }
  function gridClick(ev) {
    var r = rankAt(ev);
    var step = selectedStep();
    if (r !== null && step) go(S.job, step.stepId, r);
  }

  // ---- replay -------------------------------------------------------------------------------
  function updateScrubber() {
    var range = $("#scrubber");
    if (!range) return;
    range.max = String(Math.max(0, S.total - 1));
    if (S.mode !== "replay") range.value = String(Math.max(0, S.total - 1));
    var where = $("#where");
    where.textContent = S.mode === "replay" ? "event " + S.at + " of " + (S.total - 1) : "live (" + S.total + " inputs recorded)";
    $("#live-btn").disabled = S.mode !== "replay";
  }
  function goLive() {
    S.mode = "live"; S.at = null; S.replay = null;
    $("#detail").dataset.mode = "live";
    render();
    loadTimeline();
  }
  function scrubTo(i) {
    if (!S.detail) return;
    var max = Math.max(0, S.total - 1);
    i = Math.max(0, Math.min(max, Math.round(i)));
    S.mode = "replay"; S.at = i;
    $("#scrubber").value = String(i);
    $("#detail").dataset.mode = "replay";
    updateScrubber();
    if (S.scrubTimer) clearTimeout(S.scrubTimer);
    S.scrubTimer = setTimeout(function () {
      S.scrubTimer = null;
      var step = selectedStep();
      var q = "?at=" + i + (step ? "&step=" + encodeURIComponent(step.stepId) : "") + (S.rank !== null ? "&rank=" + S.rank : "");
      var job = S.job;
      api("/api/jobs/" + encodeURIComponent(job) + "/replay" + q).then(function (r) {
        if (job !== S.job || S.mode !== "replay" || S.at !== i) return;
        S.replay = r;
        S.total = r.total;
        render();
        loadTimeline();
      }, problem);
    }, 40);
  }
  function inputText(x) {
    if (x.kind === "submit") return "job submitted";
    if (x.kind === "launch") return "LAUNCH step " + x.step + " on " + x.placement.map(function (p) { return p.node + "[" + p.ranks + "]"; }).join(", ");
    if (x.type === "task.started") return "task.started step " + x.step + " rank " + x.rank + " on " + x.node + " (pid " + x.pid + ")";
    return "task.ended step " + x.step + " rank " + x.rank + " on " + x.node + ": " + outcomeText(x.outcome);
  }
  function publishedText(m) {
    if (m.type === "job.state") return "job.state " + (m.step === undefined ? "job" : "step " + m.step) + " " + m.state + " Reason=" + m.reason + " ExitCode=" + m.exitCode;
    if (m.type === "step.first_failure") return "step.first_failure step " + m.step + ": task " + m.trigger.rank + " on " + m.trigger.node + " " + outcomeText(m.trigger.outcome);
    return "step.summary step " + m.step + ": " + m.state + " Reason=" + m.reason + " ExitCode=" + m.exitCode;
  }
  function renderReplay() {
    var r = S.replay;
    var v = S.detail.view;
    var step = selectedStep();
    var st = r.steps.find(function (s) { return step && s.stepId === step.stepId; }) || r.steps[0];
    showChart($("#chart-job"), "job", [r.job.state]);
    $("#chart-job-caption").textContent = "job " + v.jobId + " at event " + r.at + ": " + r.job.state;
    if (st) {
      showChart($("#chart-step"), "step", [st.state]);
      $("#chart-step-caption").textContent = "step " + v.jobId + "." + st.stepId + " at event " + r.at + ": " + st.state;
      drawGrid(st.ntasks, st.groups, "replay", r.at);
      $("#grid-title").textContent = "Tasks of step " + v.jobId + "." + st.stepId + " at event " + r.at;
    }
    var banner = $("#replay-banner");
    banner.dataset.at = String(r.at);
    banner.dataset.jobState = r.job.state;
    banner.dataset.stepState = st ? st.state : "";
    var counts = st ? Object.keys(st.counts).filter(function (k) { return st.counts[k]; }).map(function (k) { return k + " " + st.counts[k]; }).join(", ") : "";
    banner.textContent = "Replaying event " + r.at + " of " + (r.total - 1) + " (" + inputText(r.input) + "): job " + r.job.state + (st ? ", step " + st.state + " [" + counts + "]" : "") +
      (st && st.firstFailure ? ", first failure: task " + st.firstFailure.rank + " " + outcomeText(st.firstFailure.outcome) : "") +
      (st && st.end ? ", verdict " + st.end.state + " " + st.end.reason + " " + st.end.exitCode : "");
    updateScrubber();
  }
  function loadTimeline() {
    var job = S.job;
    if (!job) return;
    var idx = S.mode === "replay" ? S.at : null;
    var q = idx === null ? "?around=1000000000" : "?around=" + idx;
    if (S.timelineLoading === job) { S.timelineAgain = true; return; }
    S.timelineLoading = job;
    var seq = ++S.timelineSeq;
    var done = function () {
      if (S.timelineLoading !== job) return;
      S.timelineLoading = null;
      if (S.timelineAgain) { S.timelineAgain = false; if (S.job === job) loadTimeline(); }
    };
    api("/api/jobs/" + encodeURIComponent(job) + "/timeline" + q).finally(done).then(function (t) {
      // An older, slower answer must not replace a newer one.
      if (job !== S.job || seq < S.timelineShown) return;
      S.timelineShown = seq;
      S.total = t.total;
      updateScrubber();
      renderTimeline(t);
    }, problem);
  }
  function renderTimeline(t) {
    var body = clear($("#timeline tbody"));
    var base = S.detail ? S.detail.view.submittedAt : undefined;
    var current = S.mode === "replay" ? S.at : t.total - 1;
    var currentInput = t.inputs.find(function (x) { return x.index === current; });
    var now = S.mode === "replay" && currentInput ? currentInput.at : Infinity;
    var rows = t.inputs.map(function (x) { return { at: x.at, input: x }; });
    var lo = t.inputs.length ? t.inputs[0].at : 0;
    var hi = t.inputs.length ? t.inputs[t.inputs.length - 1].at : 0;
    var atEnd = t.from + t.inputs.length >= t.total;
    t.published.forEach(function (p) {
      var m = p.message;
      var at = m.type === "job.state" ? m.at : m.publishedAt;
      if ((at >= lo || t.from === 0) && (at <= hi || atEnd)) rows.push({ at: at, published: m, seq: p.seq });
    });
    rows.sort(function (a, b) { return a.at - b.at || (a.input ? 0 : 1) - (b.input ? 0 : 1); });
    rows.forEach(function (row) {
      if (row.input) {
        var x = row.input;
        var cls = x.index === current ? "current" : x.index > current ? "future" : "";
        var tr = h("tr", { class: cls, data: { index: String(x.index), kind: x.kind }, onclick: function () { scrubTo(x.index); } },
          h("td", { text: "#" + x.index }), h("td", { class: "t", text: since(x.at, base) }), h("td", { text: inputText(x) }));
        body.appendChild(tr);
        if (x.index === current) setTimeout(function () { tr.scrollIntoView({ block: "nearest" }); }, 0);
      } else {
        body.appendChild(h("tr", { class: row.at > now ? "published future" : "published", data: { kind: row.published.type } },
          h("td", { text: "pub" }), h("td", { class: "t", text: since(row.at, base) }), h("td", { text: publishedText(row.published) })));
      }
    });
  }

  // ---- task view ----------------------------------------------------------------------------
  function renderTask() {
    var box = $("#task");
    if (S.rank === null || !S.detail) { box.hidden = true; clear(box); return; }
    var step = selectedStep();
    if (!step) return;
    var fromView = step.tasks.find(function (t) { return t.rank === S.rank; });
    var fromReplay = S.mode === "replay" && S.replay && S.replay.task && S.replay.task.rank === S.rank ? S.replay.task : null;
    box.hidden = false;
    box.dataset.rank = String(S.rank);
    if (fromReplay) fillTask(box, step, fromReplay.state, fromReplay.context, "at event " + S.replay.at);
    else if (fromView) fillTask(box, step, fromView.state, fromView, "now");
    else {
      // Steps too large for the view's task list: ask the replay for the task's record.
      api("/api/jobs/" + encodeURIComponent(S.job) + "/replay?step=" + encodeURIComponent(step.stepId) + "&rank=" + S.rank).then(function (r) {
        if (r.task && r.task.rank === S.rank) fillTask(box, step, r.task.state, r.task.context, "replayed to the last event");
      }, problem);
    }
  }
  function fillTask(box, step, state, c, when) {
    clear(box);
    box.dataset.taskState = state;
    var chart = h("div", { class: "chart", id: "chart-task", data: { chart: "task" } });
    var facts = h("dl", { class: "facts", id: "task-facts" });
    function fact(k, v) { if (v !== undefined && v !== null && v !== "") append(facts, [h("dt", { text: k }), h("dd", { text: String(v) })]); }
    fact("task", S.job + "." + step.stepId + " rank " + S.rank);
    fact("state (" + when + ")", state);
    fact("node", c.node);
    fact("epoch", c.epoch);
    fact("pid", c.pid);
    fact("outcome", c.outcome ? outcomeText(c.outcome) : "");
    fact("exit code", c.exitCode);
    fact("launched", c.launchedAt ? time(c.launchedAt) : "");
    fact("started", c.startedAt ? time(c.startedAt) : "");
    fact("ended", c.endedAt ? time(c.endedAt) : "");
    fact("ran for", c.startedAt && c.endedAt ? ((c.endedAt - c.startedAt) / 1000).toFixed(3) + " s" : "");
    fact("stopped by muster", c.killedByRuntime ? "yes" + (c.stopReason ? " (" + c.stopReason + ")" : "") : "no");
    var events = h("tbody");
    append(box, [h("h3", { text: "Task " + S.job + "." + step.stepId + " rank " + S.rank }),
      h("div", { class: "row" }, chart, facts, h("button", { text: "close", onclick: function () { go(S.job, S.step, null); } })),
      h("h3", { text: "Its events" }), h("table", { id: "task-events" }, events)]);
    showChart(chart, "task", [state]);
    var job = S.job;
    var rank = S.rank;
    var key = job + "|" + step.stepId + "|" + rank + "|" + S.total;
    var show = function (inputs) {
      var base = S.detail.view.submittedAt;
      inputs.forEach(function (x) {
        events.appendChild(h("tr", { data: { index: String(x.index) }, onclick: function () { scrubTo(x.index); } },
          h("td", { text: "#" + x.index }), h("td", { class: "t", text: since(x.at, base) }), h("td", { text: inputText(x) })));
      });
    };
    // Re-rendering the same task keeps its events on screen instead of fetching them again.
    if (S.taskEvents && S.taskEvents.key === key) { show(S.taskEvents.inputs); return; }
    api("/api/jobs/" + encodeURIComponent(job) + "/timeline?step=" + encodeURIComponent(step.stepId) + "&rank=" + rank).then(function (t) {
      if (job !== S.job || rank !== S.rank || !events.isConnected) return;
      S.taskEvents = { key: key, inputs: t.inputs };
      show(t.inputs);
    }, problem);
  }

  window.addEventListener("hashchange", onRoute);
  window.addEventListener("resize", function () { if (S.detail) render(); });
  onRoute();
  if (!S.job) connect(null);
})();
`;
