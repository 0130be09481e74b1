// The overview's charts: one uPlot per event, requests as bars and the invalid rate as a line,
// with each rate alert's threshold dashed. Labels are set with textContent, never innerHTML:
// event names come from untrusted clients.
"use strict";
(function () {
  const root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  const range = root.dataset.range;
  const refresh = Number(root.dataset.refresh || 30) * 1000;
  const plots = new Map();

  function thresholdsFor(all, event) {
    return (all[event] || []).concat(all["*"] || []);
  }

  function thresholdPlugin(lines) {
    return {
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.setLineDash([6, 4]);
            ctx.strokeStyle = "#b42318";
            ctx.lineWidth = 1.5;
            for (const [, value] of lines) {
              const y = u.valToPos(value, "rate", true);
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function draw(payload) {
    for (const fig of root.querySelectorAll("figure.chart")) {
      const event = fig.dataset.event;
      const series = payload.events[event];
      if (!series) continue;
      const box = fig.querySelector(".plot");
      const rates = series.invalid_rate.filter((r) => r != null);
      // What the chart shows, readable by tests and scripts without parsing the canvas.
      fig.dataset.maxRate = String(rates.length ? Math.max(...rates) : 0);
      fig.dataset.requests = String(series.requests.reduce((a, b) => a + b, 0));
      const data = [payload.x, series.requests, series.invalid_rate];
      const lines = thresholdsFor(payload.thresholds || {}, event);
      if (plots.has(event)) {
        plots.get(event).setData(data);
        continue;
      }
      const maxRate = Math.max(0.05, ...lines.map((l) => l[1] * 1.2));
      const opts = {
        width: Math.max(320, box.clientWidth || 400),
        height: 180,
        plugins: [thresholdPlugin(lines)],
        scales: {
          x: { time: true },
          rate: { range: (u, lo, hi) => [0, Math.max(maxRate, hi || 0)] },
        },
        axes: [
          {},
          { label: "requests", size: 50 },
          { scale: "rate", side: 1, label: "invalid", size: 50, grid: { show: false },
            values: (u, ticks) => ticks.map((t) => (t * 100).toFixed(0) + "%") },
        ],
        series: [
          {},
          { label: "requests", stroke: "#3056d3", fill: "rgba(48,86,211,0.15)",
            paths: uPlot.paths.bars({ size: [0.8, 40] }) },
          { label: "invalid rate", scale: "rate", stroke: "#b42318", width: 2, spanGaps: false,
            value: (u, v) => (v == null ? "-" : (v * 100).toFixed(1) + "%") },
        ],
      };
      plots.set(event, new uPlot(opts, data, box));
    }
    root.dataset.drawn = String(plots.size);
  }

  function load() {
    fetch("/api/series?range=" + encodeURIComponent(range), { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
      .then(draw)
      .catch((err) => { root.dataset.error = String(err); });
  }

  load();
  setInterval(load, refresh);
})();
