// Draws the dashboard charts from the JSON block the server rendered.
// Every bar links to the records behind it, as the tables under the charts do.
(function () {
  const source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const family = "'Noto Sans Khmer', system-ui, sans-serif";
  const ink = "#1b1f23";
  const palette = ["#1f5f8b", "#8a3b12", "#3d7d3a", "#7a5c99", "#b08d1a", "#4a6b73", "#a34a6b", "#555566"];
  Chart.defaults.font.family = family;
  Chart.defaults.color = ink;

  const drill = (metric, period, dimension, code) =>
    `/drill?metric=${encodeURIComponent(metric)}&period=${encodeURIComponent(period)}` +
    (dimension ? `&dimension=${encodeURIComponent(dimension)}&value=${encodeURIComponent(code)}` : "");
  // Chart.js cuts a long category label off at the canvas edge; shorten it to the room
  // there is instead, by whole graphemes so that a Khmer cluster (consonant + subscript +
  // vowel) is never split. The tooltip and the table under the chart keep the full label.
  const graphemes = (text) =>
    typeof Intl !== "undefined" && Intl.Segmenter
      ? Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text), (s) => s.segment)
      : Array.from(text);
  const measure = document.createElement("canvas").getContext("2d");
  const fit = (label, room) => {
    const text = String(label);
    measure.font = `${Chart.defaults.font.size}px ${family}`;
    if (measure.measureText(text).width <= room) return text;
    const parts = graphemes(text);
    while (parts.length > 1 && measure.measureText(parts.join("") + "…").width > room) parts.pop();
    return parts.join("") + "…";
  };
  // A pointer over a bar or point shows that it can be clicked.
  const pointer = (event, items) => {
    event.native.target.style.cursor = items.length ? "pointer" : "default";
  };

  function drawTrend() {
    const canvas = document.getElementById("chart-trend");
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: data.trend.map((r) => r.label),
        datasets: [
          { label: data.labels.cases, data: data.trend.map((r) => r.cases), borderColor: palette[1], backgroundColor: palette[1] },
          { label: data.labels.victims, data: data.trend.map((r) => r.victims), borderColor: palette[0], backgroundColor: palette[0] },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        onHover: pointer,
        onClick: (_e, items) => {
          if (!items.length) return;
          const row = data.trend[items[0].index];
          const metric = items[0].datasetIndex === 0 ? "cases_cracked_down" : "victims_rescued";
          window.location.assign(drill(metric, row.label));
        },
      },
    });
  }

  function drawBreakdown(chart) {
    const canvas = document.getElementById(chart.id);
    if (!canvas || !chart.rows.length) return;
    // Sex as a doughnut, age bands (an ordered scale) as columns, other categories as
    // horizontal bars so that long labels, in Khmer too, read without rotation.
    const doughnut = chart.dimension === "sex";
    const horizontal = !doughnut && chart.dimension !== "age_band";
    if (horizontal) {
      // One row per bar, every label readable: the box grows with the number of bars.
      canvas.parentElement.style.height = `${Math.max(160, chart.rows.length * 24 + 50)}px`;
    }
    const valueAxis = { beginAtZero: true, ticks: { precision: 0 } };
    const labelAxis = {
      ticks: {
        autoSkip: false,
        callback(value) {
          return fit(this.getLabelForValue(value), Math.max(60, this.chart.width * 0.4));
        },
      },
    };
    new Chart(canvas, {
      type: doughnut ? "doughnut" : "bar",
      data: {
        labels: chart.rows.map((r) => r.label),
        datasets: [{
          label: chart.title,
          data: chart.rows.map((r) => r.count),
          backgroundColor: doughnut ? palette : palette[0],
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: doughnut, position: "right" } },
        scales: doughnut ? {} : (horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis }),
        onHover: pointer,
        onClick: (_e, items) => {
          if (items.length) window.location.assign(drill(chart.metric, data.period, chart.dimension, chart.rows[items[0].index].code));
        },
      },
    });
  }

  function draw() {
    drawTrend();
    for (const chart of data.charts) drawBreakdown(chart);
  }

  // A canvas is painted once, with the fonts loaded at that moment: wait for the
  // Noto Sans Khmer faces the labels need, or Khmer labels come out in a fallback font.
  const text = data.charts.flatMap((c) => c.rows.map((r) => r.label)).join("") + data.labels.cases + data.labels.victims;
  if (document.fonts && document.fonts.load) {
    Promise.all([
      document.fonts.load(`12px ${family}`, text),
      document.fonts.load(`bold 12px ${family}`, text),
    ]).then(draw, draw);
  } else {
    draw();
  }
})();
