// Draws the dashboard charts from the JSON block the server rendered.
// Every bar links to the records behind it, as the tables under the charts do.
(function () {
  const source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const font = { family: "'Noto Sans Khmer', system-ui, sans-serif" };
  Chart.defaults.font.family = font.family;
  const drill = (metric, dimension, code) =>
    `/drill?metric=${metric}&period=${encodeURIComponent(data.period)}` +
    (dimension ? `&dimension=${dimension}&value=${encodeURIComponent(code)}` : "");

  const trend = document.getElementById("chart-trend");
  if (trend) {
    new Chart(trend, {
      type: "line",
      data: {
        labels: data.trend.map((r) => r.label),
        datasets: [
          { label: data.labels.cases, data: data.trend.map((r) => r.cases), borderColor: "#8a3b12", backgroundColor: "#8a3b12" },
          { label: data.labels.victims, data: data.trend.map((r) => r.victims), borderColor: "#1f5f8b", backgroundColor: "#1f5f8b" },
        ],
      },
      options: {
        animation: false,
        onClick: (_e, items) => {
          if (!items.length) return;
          const row = data.trend[items[0].index];
          const metric = items[0].datasetIndex === 0 ? "cases_cracked_down" : "victims_rescued";
          window.location = `/drill?metric=${metric}&period=${row.label}`;
        },
      },
    });
  }
  for (const chart of data.charts) {
    const canvas = document.getElementById(chart.id);
    if (!canvas) continue;
    new Chart(canvas, {
      type: chart.dimension === "sex" ? "doughnut" : "bar",
      data: {
        labels: chart.rows.map((r) => r.label),
        datasets: [{ label: chart.title, data: chart.rows.map((r) => r.count),
          backgroundColor: ["#1f5f8b", "#8a3b12", "#3d7d3a", "#7a5c99", "#b08d1a", "#4a6b73", "#a34a6b", "#556"] }],
      },
      options: {
        animation: false,
        indexAxis: chart.rows.length > 8 ? "y" : "x",
        plugins: { legend: { display: chart.dimension === "sex" } },
        onClick: (_e, items) => {
          if (items.length) window.location = drill(chart.metric, chart.dimension, chart.rows[items[0].index].code);
        },
      },
    });
  }
})();
