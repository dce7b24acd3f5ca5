/**
 * The dashboard's charts (browser code, drawn with uPlot): each pool's instances over the last hours, claims
 * and misses per minute, claim latency p50/p99, provider errors and, when the server counts them, Railway API
 * requests used in the last hour against the plan's limit. It polls `/dashboard/history` for new samples only.
 */
export const chartsScript = /* js */ `
(() => {
  const box = document.getElementById("charts");
  if (!box || typeof uPlot !== "function") return;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const palette = { idle: "#1f8a4c", starting: "#d18b00", claimed: "#2f6fed", crashed: "#c83232", misses: "#d18b00", failed: "#c83232", p50: "#2f6fed", p99: "#8a4bd6", errors: "#c83232", used: "#2f6fed", limit: "#c83232" };
  let view = { intervalMs: 60000, pools: [], requestLimitPerHour: null, samples: [] };
  const charts = new Map();

  // Each chart: a title, its series (label, colour, value of a sample) and a line saying the latest values.
  function specs() {
    const perMinute = 60000 / view.intervalMs;
    // The server's pools, and any other that records from another replica mention.
    const pools = [...new Set([...view.pools, ...view.samples.flatMap((s) => Object.keys(s.pools))])];
    const list = pools.map((pool) => ({
      id: "pool-" + pool,
      title: "Pool " + pool + ": instances",
      unit: "instances",
      series: ["idle", "starting", "claimed", "crashed"].map((status) => ({ label: status, stroke: palette[status], value: (s) => (s.pools[pool] ? s.pools[pool][status] : null) }))
    }));
    list.push(
      { id: "claims", title: "Claims per minute", unit: "per min", series: [
        { label: "claimed", stroke: palette.claimed, value: (s) => s.claims * perMinute },
        { label: "missed (no idle)", stroke: palette.misses, value: (s) => s.misses * perMinute },
        { label: "failed", stroke: palette.failed, value: (s) => s.failed * perMinute }
      ] },
      { id: "latency", title: "Claim latency", unit: "ms", series: [
        { label: "p50", stroke: palette.p50, value: (s) => s.p50Ms },
        { label: "p99", stroke: palette.p99, value: (s) => s.p99Ms }
      ] },
      { id: "errors", title: "Provider errors per minute", unit: "per min", series: [
        { label: "errors", stroke: palette.errors, value: (s) => s.providerErrors * perMinute }
      ] }
    );
    if (view.samples.some((s) => s.requestsLastHour !== undefined)) {
      const series = [{ label: "used (last hour)", stroke: palette.used, value: (s) => (s.requestsLastHour === undefined ? null : s.requestsLastHour) }];
      if (view.requestLimitPerHour !== null) series.push({ label: "limit", stroke: palette.limit, dash: [6, 4], value: () => view.requestLimitPerHour });
      list.push({ id: "requests", title: "Railway API requests", unit: "requests", series });
    }
    return list;
  }

  const round = (v) => (v === null || v === undefined ? "–" : Math.round(v * 10) / 10);

  function draw() {
    const xs = view.samples.map((s) => s.at / 1000);
    for (const spec of specs()) {
      const data = [xs, ...spec.series.map((line) => view.samples.map(line.value))];
      let chart = charts.get(spec.id);
      if (!chart) {
        const card = document.createElement("div");
        card.className = "chart";
        card.dataset.chart = spec.id;
        const title = document.createElement("h3");
        title.textContent = spec.title;
        const latest = document.createElement("div");
        latest.className = "muted latest";
        card.append(title, latest);
        box.append(card);
        const plot = new uPlot({
          width: Math.max(260, card.clientWidth - 4),
          height: 170,
          legend: { live: false },
          cursor: { drag: { x: false, y: false } },
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [
            { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } },
            { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") }, size: 48, label: spec.unit, labelSize: 14 }
          ],
          series: [{}, ...spec.series.map((line) => ({ label: line.label, stroke: line.stroke, width: 2, dash: line.dash, spanGaps: false, value: (u, v) => round(v) }))]
        }, data, card);
        chart = { plot, card, latest };
        charts.set(spec.id, chart);
      } else {
        chart.plot.setData(data);
      }
      const last = view.samples[view.samples.length - 1];
      chart.latest.textContent = last
        ? "now: " + spec.series.map((line) => line.label + " " + round(line.value(last))).join(" · ")
        : "collecting: one sample every " + Math.round(view.intervalMs / 1000) + " s";
    }
  }

  async function poll() {
    try {
      // The last two intervals again: another replica may have added to them since.
      const since = view.samples.length ? view.samples[view.samples.length - 1].at - 2 * view.intervalMs : null;
      const response = await fetch("/dashboard/history" + (since === null ? "" : "?since=" + since));
      if (!response.ok) throw new Error("HTTP " + response.status);
      const next = await response.json();
      const keepAfter = Date.now() - 6 * 3600 * 1000;
      view = { ...next, samples: [...view.samples.filter((s) => since === null || s.at <= since), ...next.samples].filter((s) => s.at > keepAfter) };
      window.warmpoolHistory = view;
      draw();
    } catch (e) {
      box.dataset.error = e.message;
    }
    setTimeout(poll, Math.min(10000, Math.max(1000, view.intervalMs)));
  }

  window.addEventListener("resize", () => {
    for (const chart of charts.values()) chart.plot.setSize({ width: Math.max(260, chart.card.clientWidth - 4), height: 170 });
  });
  poll();
})();
`
