// Draws the trend of flagged posts on the screening queue from the JSON block the server rendered
// (no inline script: the CSP forbids it). Each point links to the posts behind it, as the table does.
(function () {
  const source = document.getElementById("flagged-data");
  const canvas = document.getElementById("chart-flagged");
  if (!source || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const family = "'Noto Sans Khmer', system-ui, sans-serif";
  Chart.defaults.font.family = family;
  Chart.defaults.color = "#1b1f23";
  const colour = "#8a3b12";
  function draw() {
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: data.title, data: data.counts, backgroundColor: colour, borderColor: colour }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        onHover: (event, items) => {
          event.native.target.style.cursor = items.length ? "pointer" : "default";
        },
        onClick: (_e, items) => {
          if (!items.length) return;
          const period = data.labels[items[0].index];
          window.location.assign(`/drill?metric=${encodeURIComponent(data.metric)}&period=${encodeURIComponent(period)}`);
        },
      },
    });
  }
  if (document.fonts && document.fonts.load) {
    document.fonts.load(`12px ${family}`, data.title).then(draw, draw);
  } else {
    draw();
  }
})();
