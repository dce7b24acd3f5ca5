/**
 * The dashboard's API-budget line: Railway requests used in the last hour against the plan's limit, 429s, and
 * what Railway says is left. Self-contained (its own markup and script, fed by `GET /api/pool/budget`); hidden
 * until there is a key and a provider with a budget.
 */
export const budgetWidget = /* html */ `
  <section id="budgetbox" hidden>
    <h2>Railway API budget</h2>
    <div id="budgetline"></div>
    <div style="margin-top:6px;height:8px;border:1px solid var(--line);border-radius:4px;overflow:hidden"><div id="budgetbar" style="height:100%;width:0;background:var(--accent)"></div></div>
  </section>
  <script>
  (() => {
    const box = document.getElementById("budgetbox");
    async function budget() {
      const key = sessionStorage.getItem("warmpool.key");
      if (!key) { box.hidden = true; return; }
      const response = await fetch("/api/pool/budget", { headers: { authorization: "Bearer " + key } }).catch(() => null);
      const data = response && response.ok ? await response.json().catch(() => null) : null;
      if (!data || data.provider !== "railway") { box.hidden = true; return; }
      box.hidden = false;
      const share = data.hourlyLimit > 0 ? data.requestsLastHour / data.hourlyLimit : 0;
      document.getElementById("budgetline").textContent =
        data.requestsLastHour + " of " + data.hourlyLimit + " requests in the last hour (" + Math.round(share * 100) + " %)" +
        (data.remaining == null ? "" : " · Railway says " + data.remaining + " left") + " · 429s: " + data.rateLimited +
        (data.tokens ? " · tokens: " + data.tokens.healthy + " healthy, " + data.tokens.cooling + " cooling, " + data.tokens.dropped + " dropped" : "");
      const bar = document.getElementById("budgetbar");
      bar.style.width = Math.min(100, share * 100) + "%";
      bar.style.background = share > 0.75 ? "var(--bad)" : "var(--accent)";
    }
    budget(); setInterval(budget, 10000);
  })();
  </script>
`
