// Draws the run's timeline from the JSON document in #run-data: one row per job, grouped by stage; for each
// attempt a "queued" bar (from its submission, or the attempt before, to its start) and an "attempt" bar
// (running: from its start to its stop), coloured by how it ended. A retry (attempt 2 and later) is marked
// with its number; an attempt whose host went away (a Spot interruption) with a cross.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var LABEL = 260, WIDTH = 900, ROW = 16, BAR = 11, TOP = 24;
  var span = Math.max(data.last - data.first, 1000);
  function x(t) { return LABEL + ((t - data.first) / span) * WIDTH; }
  function node(name, attrs, parent, text) {
    var el = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (key) { el.setAttribute(key, attrs[key]); });
    if (text !== undefined) { el.textContent = text; }
    parent.appendChild(el);
    return el;
  }
  function duration(ms) {
    var s = Math.round(ms / 1000);
    return s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
  }
  var rows = data.stages.reduce(function (n, stage) { return n + 1 + stage.jobs.length; }, 0);
  var svg = node("svg", {width: LABEL + WIDTH + 20, height: TOP + rows * ROW + 10, role: "img",
                         "aria-label": "timeline of every job attempt"}, document.createDocumentFragment());
  for (var i = 0; i <= 6; i++) {  // the time axis: seconds since the first submission
    var at = LABEL + (i / 6) * WIDTH;
    node("line", {x1: at, x2: at, y1: TOP - 6, y2: TOP + rows * ROW, "class": "grid"}, svg);
    node("text", {x: at, y: TOP - 10, "text-anchor": "middle", "class": "axis"}, svg, duration((i / 6) * span));
  }
  var y = TOP;
  data.stages.forEach(function (stage) {
    node("text", {x: 4, y: y + BAR, "class": "stage-label"}, svg, stage.label + " (" + stage.jobs.length + " jobs)");
    y += ROW;
    stage.jobs.forEach(function (job) {
      var label = job.name.length > 38 ? job.name.slice(0, 37) + "\u2026" : job.name;
      node("text", {x: 14, y: y + BAR - 1, "class": "job-label"}, svg, label).setAttribute("data-job", job.job_id);
      if (job.attempts.length === 0) {
        node("text", {x: LABEL + 4, y: y + BAR - 1, "class": "job-label"}, svg, job.status.toLowerCase() + ": did not run");
      }
      job.attempts.forEach(function (a) {
        var start = a.start === null ? null : a.start, stop = a.stop === null ? data.now : a.stop;
        if (a.queued !== null && start !== null && start > a.queued) {
          node("rect", {x: x(a.queued), y: y + 2, width: Math.max(x(start) - x(a.queued), 1), height: BAR - 4,
                        "class": "queued"}, svg);
        }
        if (start === null) { return; }
        var classes = "attempt " + a.outcome + (a.number > 1 ? " retry" : "");
        var bar = node("rect", {x: x(start), y: y, width: Math.max(x(stop) - x(start), 2), height: BAR,
                                "class": classes, "data-job": job.job_id, "data-attempt": a.number}, svg);
        node("title", {}, bar, job.name + " attempt " + a.number + ": " + a.outcome + ", ran " +
             duration(stop - start) + (a.exit === null ? "" : ", exit code " + a.exit) +
             (a.reason ? ", " + a.reason : "") + (a.instance ? ", on " + a.instance : "") +
             ", " + job.samples + " samples" + (job.bytes === null ? "" : ", " + job.bytes + " bytes"));
        if (a.number > 1) {
          node("text", {x: x(start) + 2, y: y - 1, "class": "mark retry-mark"}, svg, String(a.number));
        }
        if (a.outcome === "host-lost") {
          node("text", {x: x(stop) + 2, y: y + BAR - 1, "class": "mark host-lost-mark"}, svg, "\u2715");
        }
      });
      y += ROW;
    });
  });
  var legend = document.getElementById("legend");
  [["queued", "queued"], ["succeeded", "succeeded"], ["failed", "failed"], ["host-lost", data.host_loss],
   ["running", "running"]].forEach(function (item) {
    var entry = document.createElement("span");
    entry.innerHTML = '<svg width="18" height="10"><rect width="18" height="10" class="' + item[0] + '"/></svg> ';
    entry.appendChild(document.createTextNode(item[1]));
    legend.appendChild(entry);
  });
  var target = document.getElementById("timeline");
  target.textContent = "";
  target.appendChild(svg);
})();
