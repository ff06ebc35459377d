// The console's own script: live status of a page's stream, and its charts (uPlot).
// Loaded from the package like everything else; no inline script anywhere (the CSP).
(() => {
  "use strict";
  // Okabe-Ito: colours told apart with the common colour-vision deficiencies; each series
  // also gets its own dash pattern, so no line is known by its colour alone.
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000"];
  const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3]];
  const charts = new Map();

  function drawCharts(root) {
    for (const [el, chart] of charts) {
      if (!el.isConnected) {
        chart.destroy();
        charts.delete(el);
      }
    }
    if (typeof uPlot === "undefined") return;
    // The data once per panel (both charts draw from it: the panel is sent on every change).
    root.querySelectorAll(".charts[data-chart]").forEach((box) => {
      const data = JSON.parse(box.dataset.chart);
      if (data.x) box.querySelectorAll(".chart[data-series]").forEach((el) => draw(el, data));
    });
  }

  function draw(el, data) {
    const which = el.dataset.series;
    const series = [{}].concat(
      data.gates.map((g, i) => ({
        label: g.label,
        stroke: PALETTE[i % PALETTE.length],
        dash: DASHES[i % DASHES.length],
        width: 2,
      })),
    );
    const rows = [data.x].concat(data.gates.map((g) => g[which]));
    // Times on the axis in the festival's zone (whatever the browser's) and the page's
    // language.
    const clock = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      hour: "2-digit",
      minute: "2-digit",
      timeZone: data.tz,
    });
    const opts = {
      width: Math.max(280, el.clientWidth || 600),
      height: 200,
      series: series,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), data.tz),
      scales: { x: { time: true } },
      axes: [{ values: (u, splits) => splits.map((ts) => clock.format(new Date(ts * 1e3))) }, {}],
      legend: { live: false },
    };
    el.replaceChildren();
    charts.set(el, new uPlot(opts, rows, el));
  }

  function setStatus(state) {
    const status = document.getElementById("live-status");
    if (!status) return;
    status.dataset.live = state;
    status.textContent = status.dataset["text" + state[0].toUpperCase() + state.slice(1)];
  }

  document.addEventListener("DOMContentLoaded", () => drawCharts(document));
  document.addEventListener("htmx:sseMessage", (e) => drawCharts(e.target));
  document.addEventListener("htmx:sseOpen", () => setStatus("open"));
  document.addEventListener("htmx:sseError", () => setStatus("error"));
  document.addEventListener("htmx:sseClose", (e) => {
    if (e.detail && e.detail.type === "message") setStatus("ended");
  });
})();
