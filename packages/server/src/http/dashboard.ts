/**
 * The dashboard: one page whose scripts and styles all come from this server (no CDN: it works offline).
 * It never contains the API key: it asks for it and keeps it in the browser's session storage. Counts and
 * charts need no key; instances and actions do. The charts live in ../dashboard/charts.ts.
 */
import { budgetWidget } from "./budget-widget.js"

export const dashboardHtml = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>warmpool</title>
<link rel="stylesheet" href="/dashboard/assets/uplot.css">
<script src="/dashboard/assets/uplot.js"></script>
<script src="/dashboard/assets/qrcode.js"></script>
<style>
  :root { color-scheme: light dark; --fg: #1d2330; --muted: #6b7385; --bg: #f6f7f9; --card: #fff; --line: #e3e6ec; --accent: #2f6fed; --bad: #c83232; --ok: #1f8a4c; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #9aa3b5; --bg: #12151b; --card: #1b1f27; --line: #2b313c; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; background: var(--bg); color: var(--fg); }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 24px; border-bottom: 1px solid var(--line); background: var(--card); }
  header h1 { font-size: 18px; margin: 0; } header .muted { margin-left: auto; }
  main { padding: 20px 24px; display: grid; gap: 16px; }
  .muted { color: var(--muted); } .bad { color: var(--bad); } .ok { color: var(--ok); }
  .cards { display: grid; grid-template-columns: repeat(7, minmax(90px, 1fr)); gap: 10px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
  .card b { display: block; font-size: 26px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
  section h2 { font-size: 14px; margin: 0 0 10px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 0; }
  input, textarea { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
  button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
  button.secondary { background: transparent; color: var(--accent); } button.danger { border-color: var(--bad); background: transparent; color: var(--bad); }
  table { width: 100%; border-collapse: collapse; } th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  td.wrap { white-space: normal; max-width: 320px; overflow-wrap: anywhere; }
  .pill { padding: 1px 8px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); }
  .s-idle { color: var(--ok); border-color: var(--ok); } .s-claimed { color: var(--accent); border-color: var(--accent); } .s-crashed { color: var(--bad); border-color: var(--bad); }
  #message { min-height: 20px; } pre { margin: 0; white-space: pre-wrap; }
  #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; }
  .chart h3 { margin: 0; font-size: 13px; } .chart .latest { font-size: 12px; margin-bottom: 4px; }
  .uplot .legend { font-size: 12px; } .uplot .u-legend th { font-weight: normal; }
  img.qr { display: block; image-rendering: pixelated; width: 84px; height: 84px; background: #fff; }
</style>
</head>
<body>
<header><h1>warmpool</h1><span class="muted" id="updated"></span></header>
<main>
  <div class="cards" id="counts"></div>
  <section id="poolsbox" hidden>
    <h2>Pools</h2>
    <table><thead><tr><th>pool</th><th>idle</th><th>starting</th><th>claimed</th><th>crashed</th><th>min idle</th><th>max</th><th>image</th></tr></thead><tbody id="pools"></tbody></table>
  </section>
  <p class="muted" id="sizing" hidden></p>
  <p class="bad" id="stuck" hidden></p>
  <section>
    <h2>Last hours</h2>
    <div id="charts"></div>
  </section>
  <section id="keybox">
    <h2>API key</h2>
    <form id="keyform"><input id="key" type="password" placeholder="POOL_API_KEY" autocomplete="off" size="40" required><button>Use key</button>
      <span class="muted">Kept in this tab only (session storage); never in the page.</span></form>
  </section>
  <div id="message" role="status"></div>
  <section id="operate" hidden>
    <h2>Operate</h2>
    <label class="muted">Pool <select id="pool"></select></label>
    <form id="replenish"><input name="count" type="number" min="1" max="100" value="1" style="width:80px"><button>Add</button></form>
    <form id="drain" style="margin-top:8px"><input name="count" type="number" min="1" max="100" value="1" style="width:80px"><button class="secondary">Drain idle</button></form>
    <form id="reconcile" style="margin-top:8px"><button class="secondary">Reconcile now</button></form>
    <form id="settings" style="margin-top:8px"><label class="muted">Min idle (default pool, kept across restarts) <input name="target_idle" type="number" min="0" max="50" style="width:80px"></label><button class="secondary">Save</button></form>
  </section>
  <section id="claimbox" hidden>
    <h2>Claim</h2>
    <form id="claim">
      <input name="agentName" placeholder="agent name" required maxlength="200">
      <input name="instructions" placeholder="instructions" size="40">
      <input name="joinUrl" placeholder="join URL (optional)" size="30">
      <button>Claim</button>
    </form>
  </section>
  <section id="instancesbox" hidden>
    <h2>Instances</h2>
    <table><thead><tr><th>id</th><th>pool</th><th>status</th><th>age</th><th>URL</th><th>image</th><th>deploy</th><th>agent</th><th>last error</th><th>invite</th><th></th></tr></thead><tbody id="instances"></tbody></table>
  </section>
  ${budgetWidget}
</main>
<script>
(() => {
  const statuses = ["idle", "starting", "creating", "claiming", "claimed", "pending_acceptance", "tainted", "crashed", "deleting"];
  const $ = (id) => document.getElementById(id);
  const key = () => sessionStorage.getItem("warmpool.key");
  // What the key may do (GET /api/pool/scope): "operator" sees and does everything, "claim" (POOL_CLAIM_KEYS) only claims.
  let scope = null;
  const say = (text, bad) => { const m = $("message"); m.textContent = text; m.className = bad ? "bad" : "ok"; };
  const age = (iso) => { const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000); return s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h"; };
  const text = (value) => document.createTextNode(value == null ? "" : String(value));

  async function api(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (key()) headers.authorization = "Bearer " + key();
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) { sessionStorage.removeItem("warmpool.key"); scope = null; show(); throw new Error("The API key was refused."); }
    if (!response.ok) throw new Error(data.message || (data.errors && data.errors.join("; ")) || ("HTTP " + response.status));
    return data;
  }

  function renderCounts(counts) {
    const box = $("counts"); box.replaceChildren();
    for (const s of statuses) { const c = document.createElement("div"); c.className = "card"; const b = document.createElement("b"); b.textContent = counts[s] ?? 0; c.append(b, text(s)); box.append(c); }
  }

  // Every pool in a table (with the key, its size and image too); the pool the forms act on is chosen above them.
  function renderPools(pools) {
    const names = Object.keys(pools || {});
    $("poolsbox").hidden = names.length === 0;
    $("pools").replaceChildren(...names.map((name) => {
      const p = pools[name], counts = p.counts || p, tr = document.createElement("tr");
      for (const v of [name + (p.default ? " (default)" : ""), counts.idle, counts.starting, counts.claimed, counts.crashed, p.minIdle ?? "", p.maxTotal ?? "", p.image ?? ""]) { const td = document.createElement("td"); td.append(text(v)); tr.append(td); }
      return tr;
    }));
    const select = $("pool"), chosen = select.value;
    if (select.options.length !== names.length) select.replaceChildren(...names.map((name) => { const o = document.createElement("option"); o.value = o.textContent = name; return o; }));
    if (names.includes(chosen)) select.value = chosen;
  }
  const pool = () => $("pool").value || undefined;

  function row(instance) {
    const tr = document.createElement("tr");
    const cell = (value, cls) => { const td = document.createElement("td"); if (cls) td.className = cls; td.append(value instanceof Node ? value : text(value)); tr.append(td); };
    cell(instance.id); cell(instance.pool);
    const pill = document.createElement("span"); pill.className = "pill s-" + instance.status; pill.textContent = instance.status; cell(pill);
    cell(age(instance.createdAt)); cell(instance.url ? link(instance.url, new URL(instance.url).host) : "");
    const image = document.createElement("span"); image.textContent = (instance.runtimeImage ?? "").split("/").pop() + (instance.runtimeVersion ? " (" + instance.runtimeVersion + ")" : ""); image.title = instance.runtimeImage ?? ""; cell(image);
    cell(instance.deployStatus ?? ""); cell(instance.agentName ?? ""); cell(instance.lastError ?? "", "wrap");
    cell(instance.status === "claimed" && instance.inviteUrl ? inviteQr(instance.inviteUrl) : "");
    const actions = document.createElement("td");
    if (instance.status === "claimed") actions.append(button("Upgrade", "secondary", () => confirm("Redeploy " + instance.id + " onto its pool's current image?") && act("POST", "/api/pool/instances/" + instance.id + "/upgrade", "Upgraded " + instance.id)));
    if (instance.status === "crashed" || instance.status === "tainted") actions.append(button("Dismiss", "secondary", () => act("DELETE", "/api/pool/crashed/" + instance.id, "Dismissed " + instance.id)));
    if (instance.status !== "deleting") actions.append(button("Kill", "danger", () => confirm("Kill " + instance.id + "?") && act("DELETE", "/api/pool/instances/" + instance.id, "Killing " + instance.id)));
    tr.append(actions);
    return tr;
  }
  function link(href, label) { const a = document.createElement("a"); a.href = href; a.textContent = label; a.target = "_blank"; a.rel = "noopener"; return a; }
  // The invite as a QR code, to join the conversation from a phone.
  function inviteQr(url) {
    if (typeof qrcode !== "function") return link(url, "invite");
    const qr = qrcode(0, "M"); qr.addData(url); qr.make();
    const img = document.createElement("img"); img.className = "qr"; img.src = qr.createDataURL(2, 4); img.alt = "QR code of the invite " + url; img.title = url;
    const a = link(url, ""); a.append(img); return a;
  }
  function button(label, cls, onclick) { const b = document.createElement("button"); b.textContent = label; b.className = cls; b.onclick = onclick; b.style.marginRight = "6px"; return b; }

  async function act(method, path, done, body) {
    try { const result = await api(method, path, body); say(typeof done === "function" ? done(result) : done); await refresh(); } catch (e) { say(e.message, true); }
  }

  async function refresh() {
    try {
      if (key() && scope === null) { scope = (await api("GET", "/api/pool/scope")).scope; show(); }
      if (key() && scope === "operator") {
        const status = await api("GET", "/api/pool/status");
        renderCounts(status.counts); renderPools(status.pools);
        const sizing = Object.entries(status.pools).filter(([, p]) => p.sizing).map(([name, p]) => "Autoscaling " + name + ": " + p.sizing.summary);
        $("sizing").hidden = sizing.length === 0; $("sizing").textContent = sizing.join(" · ");
        const stuck = Object.entries(status.pools).flatMap(([name, p]) => (p.stuck || []).map((s) => name + ": " + s.key + " failed " + s.failures + "× (" + s.reason + "), next try " + new Date(s.retryAt).toLocaleTimeString()));
        $("stuck").hidden = stuck.length === 0; $("stuck").textContent = stuck.length === 0 ? "" : "Stuck: " + stuck.join(" · ");
        const body = $("instances"); body.replaceChildren(...status.instances.map(row));
      } else {
        const counts = await api("GET", "/api/pool/counts"); renderCounts(counts); renderPools(counts.pools);
      }
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) { say(e.message, true); }
  }

  // Only what the key may do is shown: a claim key gets the claim form and the counts, nothing else.
  function show() {
    const has = Boolean(key()), operator = has && scope === "operator";
    $("keybox").hidden = has;
    $("claimbox").hidden = !has || scope === null;
    for (const id of ["operate", "instancesbox"]) $(id).hidden = !operator;
    if (operator) api("GET", "/api/pool/settings").then((s) => { $("settings").elements.target_idle.value = s.target_idle; }).catch(() => {});
  }

  $("keyform").onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem("warmpool.key", $("key").value); $("key").value = ""; scope = null; show(); refresh(); };
  $("settings").onsubmit = (e) => { e.preventDefault(); act("PUT", "/api/pool/settings", (s) => "Min idle of the default pool: " + s.target_idle, { target_idle: String(new FormData(e.target).get("target_idle")) }); };
  $("replenish").onsubmit = (e) => { e.preventDefault(); const count = Number(new FormData(e.target).get("count")); act("POST", "/api/pool/replenish", (s) => "Pass " + s.pass + ": " + s.planned.Create + " create(s)", { count, pool: pool() }); };
  $("drain").onsubmit = (e) => { e.preventDefault(); const count = Number(new FormData(e.target).get("count")); act("POST", "/api/pool/drain", (r) => "Draining " + r.drained.length + " instance(s)", { count, pool: pool() }); };
  $("reconcile").onsubmit = (e) => { e.preventDefault(); act("POST", "/api/pool/reconcile" + (pool() ? "?pool=" + encodeURIComponent(pool()) : ""), (s) => "Pass " + s.pass + " took " + s.durationMs + " ms" + (s.errors.length ? "; " + s.errors.length + " failed" : "")); };
  $("claim").onsubmit = (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const body = { agentName: form.get("agentName"), instructions: form.get("instructions") || "", pool: pool() };
    if (form.get("joinUrl")) body.joinUrl = form.get("joinUrl");
    act("POST", "/api/pool/claim", (r) => "Claimed " + r.instanceId + ": " + (r.inviteUrl || r.conversationId), body);
  };
  show(); refresh(); setInterval(refresh, 4000);
})();
</script>
<script src="/dashboard/assets/charts.js"></script>
</body>
</html>
`
