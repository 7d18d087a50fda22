// Draws report.html's timeline as SVG from the JSON in #timeline-data (see html.rs).
// Text goes in with textContent and attributes with setAttribute, never as markup, so no
// string from the data can become a tag.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var tl = data.timeline;
  var failure = data.failure;
  var SVG = "http://www.w3.org/2000/svg";
  var host = document.getElementById("timeline");
  var width = Math.max(900, host.clientWidth || 1200);
  var labelW = 170, right = 16, axisH = 46, stepH = 24, laneH = 20, fsH = 9;
  var plotW = width - labelW - right;
  var end = Math.max(tl.end_ms, 1);

  function x(ms) { return labelW + (ms / end) * plotW; }
  function secs(ms) { return (ms / 1000).toFixed(3) + " s"; }
  function el(name, attrs, parent, text) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    parent.appendChild(e);
    return e;
  }
  function tip(e, text) { el("title", {}, e, text); return e; }
  function span(parent, from, to, y, h, fill, extra) {
    var attrs = { x: x(from), y: y, width: Math.max(2, x(to) - x(from)), height: h, fill: fill };
    Object.keys(extra || {}).forEach(function (k) { attrs[k] = extra[k]; });
    return el("rect", attrs, parent);
  }

  // Rows: the steps, then each lane with one thin row per encrypted filesystem.
  var rows = [];
  var y = axisH;
  rows.push({ kind: "steps", y: y, h: stepH });
  y += stepH + 6;
  var laneY = {};
  tl.lanes.forEach(function (lane) {
    var h = laneH + lane.filesystems.length * (fsH + 1);
    laneY[lane.host] = { y: y, h: h, lane: lane };
    y += h + 4;
  });
  var height = y + 4;

  var svg = el("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height }, host);
  var defs = el("defs", {}, svg);
  var hatch = el("pattern", { id: "down", width: 6, height: 6, patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)" }, defs);
  el("rect", { width: 6, height: 6, fill: "#ccc" }, hatch);
  el("rect", { width: 3, height: 6, fill: "#777" }, hatch);

  // Time axis, in simulated seconds, at a round step.
  var steps = [100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000, 600000, 1200000, 3600000];
  var tick = steps.find(function (s) { return end / s <= 12; }) || 3600000;
  for (var t = 0; t <= end; t += tick) {
    el("line", { x1: x(t), x2: x(t), y1: axisH - 6, y2: height, stroke: "#e4e4e4" }, svg);
    el("text", { x: x(t), y: axisH - 10, "text-anchor": "middle" }, svg, (t / 1000) + " s");
  }

  // Lane backgrounds and labels.
  el("text", { x: 4, y: rows[0].y + 16 }, svg, "steps");
  tl.lanes.forEach(function (lane, i) {
    var r = laneY[lane.host];
    el("rect", { x: labelW, y: r.y, width: plotW, height: r.h, fill: i % 2 ? "#fafafa" : "#f3f5f8" }, svg);
    el("text", { x: 4, y: r.y + 14 }, svg, lane.label);
    lane.filesystems.forEach(function (fs, j) {
      el("text", { x: 16, y: r.y + laneH + j * (fsH + 1) + 8, "class": "small" }, svg, fs);
    });
  });

  // Faults and downtimes shade the whole height of their lane.
  tl.periods.forEach(function (p) {
    var r = laneY[p.lane];
    if (!r) { return; }
    var fill = p.kind === "down" ? "url(#down)" : "rgba(255,152,0,0.45)";
    tip(span(svg, p.from_ms, p.to_ms, r.y, r.h, fill),
      p.lane + ": " + p.what + "\n" + secs(p.from_ms) + " to " + secs(p.to_ms));
    if (x(p.to_ms) - x(p.from_ms) > 60) {
      el("text", { x: x(p.from_ms) + 3, y: r.y + 14, "class": "small" }, svg, p.what);
    }
  });

  // Key state per backend and filesystem.
  tl.keys.forEach(function (k) {
    var r = laneY[k.lane];
    if (!r) { return; }
    var j = r.lane.filesystems.indexOf(k.fs);
    if (j < 0) { return; }
    tip(span(svg, k.from_ms, k.to_ms, r.y + laneH + j * (fsH + 1), fsH,
      k.state === "ready" ? "#27ae60" : "#8e44ad"),
      k.lane + " " + k.fs + ": " + k.state + "\n" + secs(k.from_ms) + " to " + secs(k.to_ms));
  });

  // Instant actions: a tick on their lane, or across every lane.
  tl.marks.forEach(function (m) {
    var r = laneY[m.lane];
    var y1 = r ? r.y : axisH, y2 = r ? r.y + r.h : height;
    tip(el("rect", { x: x(m.at_ms) - 2, y: y1, width: 4, height: y2 - y1, fill: "#333" }, svg),
      (m.lane || "every host") + ": " + m.what + " at " + secs(m.at_ms));
  });

  // Steps, coloured by kind; the failing one red.
  var colour = { admin: "#2e86de", fault: "#e67e22", other: "#aab" };
  tl.steps.forEach(function (s) {
    var failed = s.outcome === "failed";
    var rect = span(svg, s.from_ms, s.to_ms, rows[0].y, stepH, failed ? "#d00" : colour[s.kind],
      { stroke: "#fff", "stroke-width": 1 });
    if (failed) { rect.setAttribute("id", "failing-span"); }
    tip(rect, "step " + s.index + ": " + s.action + (s.detail ? " " + s.detail : "") + "\n" +
      secs(s.from_ms) + " to " + secs(s.to_ms) + ", " + s.outcome +
      (s.events.length ? "\n" + s.events.join("\n") : ""));
    if (x(s.to_ms) - x(s.from_ms) > 16) {
      el("text", { x: x(s.from_ms) + 3, y: rows[0].y + 16, fill: "#fff" }, svg, String(s.index))
        .setAttribute("style", "fill:#fff");
    }
  });

  // Phases: a dashed line where each began.
  // Phases a few pixels apart (setup, then steps at once) share one label.
  var lastLabel = null;
  tl.phases.forEach(function (p) {
    el("line", { x1: x(p.at_ms), x2: x(p.at_ms), y1: 12, y2: height, stroke: "#555",
      "stroke-dasharray": "4 3" }, svg);
    if (lastLabel && x(p.at_ms) - lastLabel.x < 60) {
      lastLabel.text.textContent += ", " + p.what;
      return;
    }
    lastLabel = { x: x(p.at_ms),
      text: el("text", { x: x(p.at_ms) + 3, y: 10, "class": "small" }, svg, p.what) };
  });

  // The moment of failure, across every lane.
  if (failure) {
    el("line", { x1: x(failure.at_ms), x2: x(failure.at_ms), y1: axisH - 4, y2: height,
      stroke: "#d00", "stroke-width": 2, id: "failure-line" }, svg);
    el("text", { x: x(failure.at_ms) - 4, y: axisH - 24, "text-anchor": "end", "class": "fail" }, svg,
      "failed: " + failure.check + " at " + secs(failure.at_ms));
  }

  var status = document.getElementById("render-status");
  status.textContent = "rendered";
  status.setAttribute("data-lanes", String(tl.lanes.length));
})();
