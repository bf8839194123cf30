// The analytics dashboard's charts: uPlot line charts of the series the page embeds
// (#chart-data: {id: {title, labels, data: [times, ...series]}}). Each figure gets
// data-drawn="1" once its chart is drawn.
(function () {
  "use strict";
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];
  const charts = JSON.parse(document.getElementById("chart-data").textContent);
  const drawn = [];
  function width(el) { return Math.max(280, Math.floor(el.clientWidth - 24)); }
  for (const [id, chart] of Object.entries(charts)) {
    const el = document.getElementById(id);
    if (!el) continue;
    const opts = {
      width: width(el),
      height: 200,
      series: [{}].concat(chart.labels.map((label, i) => ({
        label, stroke: colors[i % colors.length], width: 2, spanGaps: false,
        points: { show: chart.data[0].length < 60 },
      }))),
      axes: [{}, { size: 60 }],
      legend: { live: true },
    };
    drawn.push([el, new uPlot(opts, chart.data, el)]);
    el.dataset.drawn = "1";
  }
  window.addEventListener("resize", () => {
    for (const [el, plot] of drawn) plot.setSize({ width: width(el), height: 200 });
  });
})();
