// Draws one trend line per metric of the public release, from the JSON block the server rendered.
// A suppressed total is a gap in the line, never a zero.
(function () {
  const source = document.getElementById("transparency-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  Chart.defaults.font.family = "'Noto Sans Khmer', system-ui, sans-serif";
  Chart.defaults.color = "#1b1f23";
  for (const trend of data.trends) {
    const canvas = document.getElementById(trend.id);
    if (!canvas) continue;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: trend.periods,
        datasets: [{ label: trend.label, data: trend.values, borderColor: "#1f5f8b", backgroundColor: "#1f5f8b", spanGaps: false }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }
})();
