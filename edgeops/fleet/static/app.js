/* edgeops fleet page: reads the JSON API of `edgeops fleet serve`, polls it, draws plain SVG charts.
   No dependencies, no build step. Everything shown comes from the API; text goes in through textContent. */
(function () {
  "use strict";

  var body = document.body;
  var PAGE = body.dataset.page, FLEET = body.dataset.fleet, DEVICE = body.dataset.device;
  var POLL_MS = { devices: 2000, alerts: 5000, ab: 10000, rollouts: 3000 };
  // [key, length ms, label, how often the device page reads it again (a long window is a heavy read)]
  var WINDOWS = [["15m", 15 * 60e3, "15 min", 5e3], ["1h", 3600e3, "1 h", 10e3], ["24h", 86400e3, "24 h", 60e3],
                 ["7d", 7 * 86400e3, "7 d", 300e3]];
  var CHARTS = [
    ["p95_ms", "p95 latency", "ms"], ["rate_per_s", "rate", "/s"], ["errors", "errors", "per message"],
    ["max_psi", "max PSI (drift)", ""], ["temperature_c", "temperature", "°C"], ["cpu_percent", "CPU", "%"]
  ];
  var SVGNS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    return node;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v !== "number") return String(v);
    return v.toFixed(digits === undefined ? 1 : digits);
  }

  function unit(v, digits, u) { return v === null || v === undefined ? "—" : fmt(v, digits) + " " + u; }

  function age(s) {
    if (s === null || s === undefined) return "never";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 129600) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function when(ms) { return ms ? new Date(ms).toLocaleString() : "—"; }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
        return data;
      });
    });
  }

  function problem(message) {
    var box = document.getElementById("problem");
    box.hidden = !message;
    box.textContent = message ? "Cannot reach the fleet server: " + message + " (retrying)" : "";
  }

  function updated() { document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString(); }

  function poll(fn, ms) {
    var busy = false;
    function tick() {
      if (busy) return;
      busy = true;
      fn().then(function () { problem(""); updated(); }, function (e) { problem(e.message); })
        .then(function () { busy = false; });
    }
    tick();
    return setInterval(tick, ms);
  }

  function replace(node, child) { node.textContent = ""; node.appendChild(child); }

  function badge(state) { return el("span", { "class": "badge " + state, text: state }); }

  // -- / : the devices --------------------------------------------------------------------------------

  var COLUMNS = [
    ["device", function (d) { return el("a", { href: "/device/" + encodeURIComponent(d.id), text: d.id }); }],
    ["state", function (d) { return badge(d.state); }],
    ["model", function (d) { return [d.model.name, d.model.version].filter(Boolean).join(" ") || "—"; }],
    ["age", function (d) { return age(d.telemetry_age_s); }],
    ["p95 ms", function (d) { return fmt(d.p95_ms, 2); }],
    ["error rate", function (d) { return d.error_rate === null ? "—" : (100 * d.error_rate).toFixed(1) + " %"; }],
    ["max PSI", function (d) { return fmt(d.max_psi, 3); }],
    ["temp °C", function (d) { return fmt(d.temperature_c, 1); }],
    ["alerts", function (d) {
      return d.active_alerts.length ? el("span", { "class": "alerts", text: d.active_alerts.join(", ") }) : "—";
    }]
  ];

  function deviceTable(devices) {
    var head = el("tr", {}, COLUMNS.map(function (c) { return el("th", { scope: "col", text: c[0] }); }));
    var rows = devices.map(function (d) {
      return el("tr", { "class": "state-" + d.state, "data-device": d.id, "data-state": d.state },
        COLUMNS.map(function (c) {
          var v = c[1](d);
          return el("td", { "data-label": c[0], "data-col": c[0].split(" ")[0] }, [v]);
        }));
    });
    return el("table", { id: "devices", "class": "devices" }, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function driftLine(d) {
    if (!d || d.error || !d.fleet) return d && d.error ? "fleet drift: " + d.error : "";
    var how = (d.window_ms ? ", last " + Math.round(d.window_ms / 60000) + " min" : "") +
              (typeof d.devices === "number" ? ", " + d.devices + " devices" : "");
    var parts = ["fleet drift (max PSI" + how + "): " + fmt(d.fleet.max_psi, 3)];
    Object.keys(d.by_label || {}).forEach(function (k) { parts.push(k + " " + fmt(d.by_label[k].max_psi, 3)); });
    return parts.join(" · ");
  }

  function pageDevices(main) {
    main.textContent = "";
    var counts = el("p", { id: "counts", "class": "counts" });
    var drift = el("p", { id: "drift", "class": "counts" });
    var outDrift = el("p", { id: "output-drift", "class": "counts" });
    var holder = el("div", { id: "table" });
    main.appendChild(el("h1", { text: "Devices" }));
    main.appendChild(counts);
    main.appendChild(drift);
    main.appendChild(outDrift);
    main.appendChild(holder);
    abSection(main);
    rolloutSection(main);
    poll(function () {
      return Promise.all([getJSON("/api/devices"), getJSON("/api/fleet")]).then(function (r) {
        var devices = r[0], c = r[1].counts;
        counts.textContent = c.devices + " devices · " + c.online + " online · " + c.offline + " offline · " +
          c.firing_alerts + " firing alerts";
        drift.textContent = driftLine(r[1].drift);
        var od = r[1].drift && r[1].drift.outputs;
        outDrift.textContent = od && od.devices ? driftLine(od).replace("fleet drift", "output drift") : "";
        replace(holder, devices.length ? deviceTable(devices) : el("p", { "class": "muted", text: "No device has reported yet." }));
      });
    }, POLL_MS.devices);
  }

  // -- the A/B view: online accuracy per model version, side by side, with intervals ---------------------

  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + " %"; }

  function abCard(version, s) {
    var bar = el("div", { "class": "ab-bar", "aria-hidden": "true" });
    var range = el("span", { "class": "ab-range" });
    range.style.left = (100 * s.lo) + "%";
    range.style.width = Math.max(100 * (s.hi - s.lo), 0.5) + "%";
    var point = el("span", { "class": "ab-point" });
    point.style.left = (100 * (s.acc || 0)) + "%";
    bar.appendChild(range);
    bar.appendChild(point);
    var labels = Object.keys(s.by_label || {}).map(function (k) {
      var g = s.by_label[k];
      return el("li", { "data-label": k, text: k + ": " + pct(g.acc) + " [" + pct(g.lo) + ", " + pct(g.hi) + "], n " + g.n });
    });
    return el("div", { "class": "ab-card", "data-version": version }, [
      el("h3", { text: "version " + version }),
      el("p", { "class": "ab-acc", text: pct(s.acc) + "  [" + pct(s.lo) + ", " + pct(s.hi) + "]" }),
      bar,
      el("p", { "class": "muted", text: s.n + " labelled · " + s.correct + " correct" + (s.mae !== null ? " · MAE " + fmt(s.mae, 3) : "") }),
      el("ul", { "class": "ab-labels" }, labels)
    ]);
  }

  function abSection(main) {
    var holder = el("section", { id: "ab", "class": "ab", hidden: "" });
    main.appendChild(holder);
    poll(function () {
      return getJSON("/api/ab").then(function (r) {
        var versions = Object.keys(r.versions || {});
        if (!versions.length) { holder.hidden = true; return; }
        holder.hidden = false;
        var d = r.diff;
        var diffText = d && d.diff !== null ? "version " + d.b + " − version " + d.a + ": " + pct(d.diff) +
          " [" + pct(d.lo) + ", " + pct(d.hi) + "] (Newcombe 95 %)" : "one version has labels";
        var shown = d && d.a && d.b ? [d.a, d.b] : versions;
        holder.textContent = "";
        holder.appendChild(el("h2", { text: "Online accuracy (A/B, last hour)" }));
        holder.appendChild(el("p", { id: "ab-diff", "class": "counts", text: diffText }));
        holder.appendChild(el("div", { "class": "ab-cards" }, shown.map(function (v) { return abCard(v, r.versions[v]); })));
      });
    }, POLL_MS.ab);
  }

  // -- the rollouts: newest first; for the chosen one its devices per OTA state, its gates, why it halted ------

  // the OTA states of a rollout's devices (edgeops/fleet/rollout.py), in the order of their life
  var DEVICE_STATES = ["pending", "flashing", "retry", "updated", "failed", "rolling_back", "rolled_back", "skipped"];
  var STOPPED = { halted: true, rolled_back: true, aborted: true };

  function stageText(r) {
    var stages = r.stages || [], n = stages.length, k = Math.min(r.stage || 0, Math.max(n - 1, 0));
    var v = r.stage_value;
    var what = typeof v === "number" ? fmt(v, v % 1 ? 1 : 0) + " %" : (v === null || v === undefined ? "—" : String(v));
    return "stage " + (n ? k + 1 : 0) + "/" + n + " · " + what;
  }

  function bundleText(r) {
    var spec = r.spec || {};
    return [spec.name, r.version].filter(function (x) { return x !== null && x !== undefined && x !== ""; }).join(" ") || "—";
  }

  function rolloutRow(r, chosen, choose) {
    var link = el("a", { href: "#rollouts", "class": "rollout-pick", text: r.id });
    link.addEventListener("click", function (e) { e.preventDefault(); choose(r.id); });
    var cells = [["rollout", link], ["bundle", bundleText(r)], ["state", badge(r.state)], ["stage", stageText(r)],
                 ["created", when(r.created)], ["updated", when(r.updated)]];
    return el("tr", { "data-rollout": r.id, "data-state": r.state, "class": r.id === chosen ? "chosen" : null },
      cells.map(function (c) { return el("td", { "data-label": c[0], "data-col": c[0] }, [c[1]]); }));
  }

  function rolloutCounts(counts) {
    var names = DEVICE_STATES.filter(function (s) { return counts[s]; });
    Object.keys(counts).forEach(function (s) { if (names.indexOf(s) < 0) names.push(s); });
    var total = names.reduce(function (a, s) { return a + counts[s]; }, 0);
    var bar = el("div", { "class": "rollout-bar", "aria-hidden": "true" });
    names.forEach(function (s) {
      var seg = el("span", { "class": "seg dev-" + s, title: s + ": " + counts[s] });
      seg.style.width = (100 * counts[s] / Math.max(total, 1)) + "%";
      bar.appendChild(seg);
    });
    var list = el("ul", { id: "rollout-counts", "class": "rollout-counts" }, names.map(function (s) {
      return el("li", { "data-state": s }, [el("span", { "class": "dot dev-" + s }), s + " ",
                                            el("b", { "class": "n", text: String(counts[s]) })]);
    }));
    return el("div", {}, [el("p", { "class": "muted", text: total + " devices" }), bar, list]);
  }

  function gateStatus(g) {
    if (g.ok === true) return ["ok", "ok"];
    if (g.ok === false) return ["failing", "failing"];
    return ["nodata", "no data"];
  }

  function gatesTable(r) {
    var rows = r.gates || ((r.spec || {}).gates || []).map(function (t) {
      return { metric: String(t).split(/[<>=]/)[0], text: t, value: null, ok: null };
    });
    if (!rows.length) return el("p", { "class": "muted", text: "No gates." });
    var rank = { failing: 0, ok: 1, nodata: 2 };  // a failing gate first: it is why a rollout halts
    rows = rows.map(function (g, i) { return [rank[gateStatus(g)[0]], i, g]; })
      .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; }).map(function (x) { return x[2]; });
    var cols = ["metric", "threshold", "value", "status"];
    var head = el("tr", {}, cols.map(function (c) { return el("th", { scope: "col", text: c }); }));
    var body = rows.map(function (g) {
      var st = gateStatus(g);
      return el("tr", { "data-metric": g.metric, "data-ok": st[0], "class": "gate-" + st[0] }, [
        el("td", { "data-label": "metric", "data-col": "metric", text: g.metric }),
        el("td", { "data-label": "threshold", "data-col": "threshold", text: g.text }),
        el("td", { "data-label": "value", "data-col": "value", text: fmt(g.value, 3) }),
        el("td", { "data-label": "status", "data-col": "status" }, [el("span", { "class": "badge gate-" + st[0], text: st[1] })])
      ]);
    });
    return el("table", { id: "rollout-gates", "class": "devices" }, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function rolloutDetail(r) {
    var box = el("div", { id: "rollout-detail", "class": "rollout-detail", "data-rollout": r.id, "data-state": r.state });
    box.appendChild(el("h3", {}, [el("span", { text: "rollout " + r.id + " " }), badge(r.state)]));
    if (r.reason && (STOPPED[r.state] || r.state === "paused")) {
      box.appendChild(el("p", { id: "rollout-reason", "class": "rollout-reason" },
                         [el("b", { text: (r.state === "rolled_back" ? "halted, rolled back" : r.state) + ": " }),
                          el("span", { "class": "why", text: r.reason })]));
    }
    var dl = el("dl", { "class": "info" });
    [["bundle", bundleText(r)], ["stage", stageText(r)], ["stages", (r.stages || []).map(function (v) { return typeof v === "number" ? v + " %" : String(v); }).join(" → ") || "—"],
     ["phase", r.phase || "—"], ["created", when(r.created)], ["updated", when(r.updated)]].forEach(function (kv) {
      dl.appendChild(el("dt", { text: kv[0] }));
      dl.appendChild(el("dd", { "data-field": kv[0], text: kv[1] }));
    });
    box.appendChild(dl);
    box.appendChild(el("h4", { text: "Devices per state" }));
    box.appendChild(rolloutCounts(r.counts || {}));
    box.appendChild(el("h4", { text: "Gates" }));
    box.appendChild(gatesTable(r));
    return box;
  }

  function rolloutSection(main) {
    var holder = el("section", { id: "rollouts", "class": "rollouts", hidden: "" });
    main.appendChild(holder);
    var chosen = null, last = [];

    function draw() {
      var shown = last.filter(function (r) { return r.id === chosen; })[0] || last[0];
      var cols = ["rollout", "bundle", "state", "stage", "created", "updated"];
      var head = el("tr", {}, cols.map(function (c) { return el("th", { scope: "col", text: c }); }));
      var rows = last.map(function (r) { return rolloutRow(r, shown.id, choose); });
      holder.textContent = "";
      holder.appendChild(el("h2", { text: "Rollouts" }));
      holder.appendChild(el("table", { id: "rollouts-list", "class": "devices" }, [el("thead", {}, [head]), el("tbody", {}, rows)]));
      holder.appendChild(rolloutDetail(shown));
    }

    function choose(id) { chosen = id; draw(); }

    poll(function () {
      return getJSON("/api/rollouts").then(function (list) {
        last = list || [];
        holder.hidden = !last.length;
        if (last.length) draw(); else holder.textContent = "";
      });
    }, POLL_MS.rollouts);
  }

  // -- /device/<id> : its charts ----------------------------------------------------------------------

  function chart(metric, title, unit, points, since, until) {
    var W = 600, H = 170, L = 48, R = 10, T = 22, B = 24;
    var pts = points.filter(function (p) { return p[metric] !== null && p[metric] !== undefined; });
    var box = svg("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img", "data-metric": metric,
                           "aria-label": title + " over the window, " + pts.length + " points" });
    box.appendChild(svg("text", { x: 4, y: 14, "class": "title", text: title + (unit ? " (" + unit + ")" : "") }));
    var lo = Infinity, hi = -Infinity;
    pts.forEach(function (p) { lo = Math.min(lo, p[metric]); hi = Math.max(hi, p[metric]); });
    if (!pts.length) { lo = 0; hi = 1; }
    if (lo > 0 && lo < hi * 0.5) lo = 0;
    if (hi === lo && lo === 0) hi = 1;
    else if (hi === lo) { hi = lo + Math.abs(lo) * 0.1; lo = lo - (hi - lo); }
    var x = function (ts) { return L + (W - L - R) * (ts - since) / Math.max(until - since, 1); };
    var y = function (v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      box.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid" }));
      box.appendChild(svg("text", { x: L - 4, y: y(v) + 4, "class": "axis", "text-anchor": "end", text: +v.toPrecision(3) }));
    });
    [since, until].forEach(function (ts, i) {
      box.appendChild(svg("text", { x: i ? W - R : L, y: H - 6, "class": "axis", "text-anchor": i ? "end" : "start",
                                    text: new Date(ts).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) }));
    });
    if (!pts.length) {
      box.appendChild(svg("text", { x: W / 2, y: H / 2, "class": "axis", "text-anchor": "middle", text: "no data in this window" }));
    }
    var line = svg("polyline", {
      "class": "line", "data-metric": metric,
      points: pts.map(function (p) { return x(p.ts).toFixed(1) + "," + y(p[metric]).toFixed(1); }).join(" "),
      "data-ts": pts.map(function (p) { return p.ts; }).join(","),
      "data-values": pts.map(function (p) { return p[metric]; }).join(",")
    });
    box.appendChild(line);
    if (pts.length <= 400) {
      pts.forEach(function (p) {
        var dot = svg("circle", { cx: x(p.ts).toFixed(1), cy: y(p[metric]).toFixed(1), r: 2.2, "class": "pt",
                                  "data-ts": p.ts, "data-value": p[metric] });
        dot.appendChild(svg("title", { text: new Date(p.ts).toLocaleString() + ": " + p[metric] + (unit ? " " + unit : "") }));
        box.appendChild(dot);
      });
    }
    return box;
  }

  function windowFromURL() {
    var w = new URLSearchParams(location.search).get("window");
    return WINDOWS.some(function (o) { return o[0] === w; }) ? w : "1h";
  }

  function pageDevice(main) {
    var base = "/api/devices/" + encodeURIComponent(DEVICE);
    var chosen = windowFromURL();
    main.textContent = "";
    var select = el("select", { id: "window", "aria-label": "time window" }, WINDOWS.map(function (o) {
      var opt = el("option", { value: o[0], text: "last " + o[2] });
      if (o[0] === chosen) opt.selected = true;
      return opt;
    }));
    var info = el("dl", { id: "info", "class": "info" });
    var charts = el("div", { id: "charts", "class": "charts" });
    main.appendChild(el("h1", {}, [el("span", { text: DEVICE }), " ", el("span", { id: "state" })]));
    main.appendChild(info);
    main.appendChild(el("p", {}, [el("label", { "for": "window", text: "Window " }), select]));
    main.appendChild(charts);

    function refresh() {
      var until = Date.now(), ms = WINDOWS.filter(function (o) { return o[0] === chosen; })[0][1], since = until - ms;
      return Promise.all([getJSON(base), getJSON(base + "/series?since=" + Math.floor(since) + "&points=1500")]).then(function (r) {
        var d = r[0], series = r[1];
        replace(document.getElementById("state"), badge(d.state));
        info.textContent = "";
        [["model", [d.model.name, d.model.version].filter(Boolean).join(" ") || "—"],
         ["last seen", when(d.last_seen) + " (" + age(d.telemetry_age_s) + " ago)"],
         ["p95", unit(d.p95_ms, 2, "ms")], ["error rate", d.error_rate === null ? "—" : (100 * d.error_rate).toFixed(1) + " %"],
         ["max PSI", fmt(d.max_psi, 3)], ["temperature", unit(d.temperature_c, 1, "°C")], ["CPU", unit(d.cpu_percent, 0, "%")],
         ["labels", Object.keys(d.labels || {}).map(function (k) { return k + "=" + d.labels[k]; }).join(" ") || "—"],
         ["active alerts", d.active_alerts.join(", ") || "none"]].forEach(function (kv) {
          info.appendChild(el("dt", { text: kv[0] }));
          info.appendChild(el("dd", { text: kv[1] }));
        });
        charts.textContent = "";
        charts.dataset.points = series.points.length;
        charts.dataset.downsampled = series.downsampled;
        CHARTS.forEach(function (c) { charts.appendChild(chart(c[0], c[1], c[2], series.points, since, until)); });
      });
    }

    function every() { return WINDOWS.filter(function (o) { return o[0] === chosen; })[0][3]; }
    var timer = poll(refresh, every());
    select.addEventListener("change", function () {
      chosen = select.value;
      var url = new URL(location.href);
      url.searchParams.set("window", chosen);
      history.replaceState(null, "", url.toString());
      clearInterval(timer);
      timer = poll(refresh, every());
    });
  }

  // -- /alerts ----------------------------------------------------------------------------------------

  function pageAlerts(main) {
    main.textContent = "";
    main.appendChild(el("h1", { text: "Alerts" }));
    var holder = el("div", { id: "table" });
    main.appendChild(holder);
    var cols = [
      ["state", function (a) { return badge(a.state); }], ["rule", function (a) { return a.rule; }],
      ["device", function (a) {
        return a.device ? el("a", { href: "/device/" + encodeURIComponent(a.device), text: a.device }) : "fleet";
      }],
      ["since", function (a) { return when(a.since); }], ["resolved", function (a) { return when(a.resolved_at); }],
      ["value", function (a) { return fmt(a.value, 3); }], ["threshold", function (a) { return fmt(a.threshold, 3); }],
      ["message", function (a) { return a.message || ""; }]
    ];
    poll(function () {
      return getJSON("/api/alerts").then(function (alerts) {
        if (!alerts.length) { replace(holder, el("p", { "class": "muted", text: "No alerts." })); return; }
        var head = el("tr", {}, cols.map(function (c) { return el("th", { scope: "col", text: c[0] }); }));
        var rows = alerts.map(function (a) {
          return el("tr", { "class": "alert-" + a.state, "data-rule": a.rule, "data-device": a.device, "data-state": a.state },
            cols.map(function (c) { return el("td", { "data-label": c[0] }, [c[1](a)]); }));
        });
        replace(holder, el("table", { id: "alerts", "class": "devices" }, [el("thead", {}, [head]), el("tbody", {}, rows)]));
      });
    }, POLL_MS.alerts);
  }

  var main = document.getElementById("main");
  ({ devices: pageDevices, device: pageDevice, alerts: pageAlerts })[PAGE](main);
  var current = document.getElementById(PAGE === "alerts" ? "nav-alerts" : "nav-devices");
  if (current) current.setAttribute("aria-current", "page");
})();
