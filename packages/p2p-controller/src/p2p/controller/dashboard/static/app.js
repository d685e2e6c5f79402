// The dashboard page: fleet view at "/", a worker at "/worker/<id>".
// Live data comes from server-sent events (/api/events); every remote string is written
// with textContent, never as HTML.
"use strict";

(function () {
  const S = { session: null, view: null, t: [], series: {}, logs: {}, logTimers: {}, built: null };
  const route = (() => {
    const m = location.pathname.match(/^\/worker\/([0-9a-fA-F]+)$/);
    return m ? { page: "worker", peer: m[1].toLowerCase() } : { page: "fleet" };
  })();
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  async function api(path, opts) {
    const res = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
    let body = {};
    try { body = await res.json(); } catch (e) { body = {}; }
    if (!res.ok) throw new Error(body.error || `request failed (HTTP ${res.status})`);
    return body;
  }

  function post(path, body) {
    const headers = { "X-CSRF-Token": S.session.csrf };
    let payload = body;
    if (!(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    return api(path, { method: "POST", headers: headers, body: payload });
  }

  function showError(text) {
    const e = $("error");
    e.textContent = text;
    e.hidden = !text;
    if (text) $("notice").hidden = true;
  }

  function showNotice(text) {
    const n = $("notice");
    n.textContent = text;
    n.hidden = !text;
    if (text) $("error").hidden = true;
  }

  const fmtRate = (v) => (v === null || v === undefined ? "–" : Charts.si(v, "H/s"));
  const fmtPing = (v) => (v ? v.toFixed(v < 10 ? 2 : 1) + " ms" : "–");
  function fmtAge(ms) {
    if (!ms) return "never";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 5) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }
  function fmtUptime(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  const peerName = (p) => p.name || p.id.slice(0, 12);

  // -- history --------------------------------------------------------------------------

  function addPoint(point) {
    if (!point) return;
    const n = S.t.length;
    S.t.push(point.t);
    for (const key of Object.keys(S.series)) S.series[key].push(key in point.series ? point.series[key] : null);
    for (const [key, v] of Object.entries(point.series)) {
      if (!(key in S.series)) S.series[key] = new Array(n).fill(null).concat([v]);
    }
    const keep = Math.ceil(S.session.history / S.session.interval) + 1;
    if (S.t.length > keep) {
      const drop = S.t.length - keep;
      S.t.splice(0, drop);
      for (const key of Object.keys(S.series)) S.series[key].splice(0, drop);
    }
  }

  function chartSeries(prefix, peers) {
    const out = [];
    peers.forEach((p, i) => {
      const values = S.series[prefix + p.id];
      if (values) out.push({ key: prefix + p.id, label: peerName(p), values: values, color: i });
    });
    return out;
  }

  function drawCharts() {
    const v = S.view;
    if (!v) return;
    const base = { times: S.t, minSpanMs: Math.max(10000, 20 * S.session.interval * 1000) };
    const peers = v.peers;
    if (route.page === "fleet") {
      Charts.line($("chart-fleet"), Object.assign({}, base, { title: "Fleet hashrate", unit: "H/s",
        series: S.series.fleet ? [{ key: "fleet", label: "fleet", values: S.series.fleet }] : [] }));
      Charts.line($("chart-workers"), Object.assign({}, base, { title: "Hashrate per worker", unit: "H/s",
        series: chartSeries("hashrate:", peers), empty: "no worker answered yet" }));
      Charts.line($("chart-ping"), Object.assign({}, base, { title: "Ping per peer", unit: "ms",
        series: chartSeries("ping:", peers), empty: "no ping yet" }));
    } else {
      const p = peers.find((x) => x.id === route.peer);
      const one = p ? [p] : [];
      Charts.line($("chart-worker"), Object.assign({}, base, { title: "Hashrate", unit: "H/s",
        series: chartSeries("hashrate:", one), empty: "no stats yet" }));
      Charts.line($("chart-worker-ping"), Object.assign({}, base, { title: "Ping", unit: "ms",
        series: chartSeries("ping:", one), empty: "no ping yet" }));
    }
  }

  // -- fleet view -----------------------------------------------------------------------

  function figure(id, title) {
    return el("figure", { class: "panel chart", id: id, "aria-labelledby": id + "-title" },
      el("h2", { id: id + "-title", text: title }));
  }

  function buildFleet() {
    const view = $("view");
    view.replaceChildren(
      el("h1", { text: "Fleet" }),
      el("section", { "aria-label": "Totals" }, el("dl", { class: "totals", id: "totals" })),
      el("section", { class: "charts", "aria-label": "Charts" },
        figure("chart-fleet", "Fleet hashrate"),
        figure("chart-workers", "Hashrate per worker"),
        figure("chart-ping", "Ping per peer")),
      el("section", { class: "panel", "aria-labelledby": "peers-title" },
        el("h2", { id: "peers-title", text: "Peers and workers" }),
        el("div", { class: "table-wrap" },
          el("table", { id: "peers" },
            el("caption", { class: "muted", id: "peers-caption" }),
            el("thead", {}, el("tr", {},
              ...["Peer", "State", "Protocol", "Ping", "Score", "Role", "Last seen", "Miners", "Hashrate"].map(
                (h, i) => el("th", { scope: "col", class: [3, 4, 8].includes(i) ? "num" : null, text: h })))),
            el("tbody", {})))));
  }

  function renderFleet(v) {
    const t = v.totals;
    const cards = [
      ["Connected peers", `${t.connected} / ${t.peers}`],
      ["Workers answering", String(t.workers)],
      ["Miners running", String(t.miners)],
      ["Fleet hashrate", fmtRate(t.hashrate)],
      ["Shares accepted", String(t.shares)],
    ];
    $("totals").replaceChildren(...cards.map(([k, val]) => el("div", {}, el("dt", { text: k }), el("dd", { text: val }))));
    $("peers-caption").textContent = t.shown < t.peers
      ? `showing ${t.shown} of ${t.peers} known peers` : `${t.peers} known peer${t.peers === 1 ? "" : "s"}`;
    const rows = v.peers.map((p) => {
      const miners = p.miners.length
        ? el("ul", { class: "miners" }, ...p.miners.map((m) =>
            el("li", { "data-miner": m.name, text: `${m.name}${m.type && m.type !== m.name ? ` (${m.type})` : ""} · ${fmtRate(m.hashrate)} · ${m.shares} shares · up ${fmtUptime(m.uptime)}` })))
        : el("span", { class: "muted", text: p.hashrate === null ? "–" : "none" });
      return el("tr", { "data-peer": p.id },
        el("th", { scope: "row" }, el("a", { href: "/worker/" + p.id, text: peerName(p) }),
          el("div", { class: "muted mono", text: p.id.slice(0, 12) }),
          p.error ? el("div", { class: "peer-error", text: p.error }) : null),
        el("td", {}, el("span", { class: "state " + (p.connected ? "up" : "down"), text: p.connected ? "connected" : "disconnected" })),
        el("td", { class: "nowrap", text: p.protocol }),
        el("td", { class: "num", text: fmtPing(p.pingMs) }),
        el("td", { class: "num", text: p.score.toFixed(1) }),
        el("td", { text: p.role || "–" }),
        el("td", { class: "nowrap", text: fmtAge(p.lastSeen) }),
        el("td", {}, miners),
        el("td", { class: "num", "data-hashrate": p.hashrate === null ? "" : p.hashrate, text: fmtRate(p.hashrate) }));
    });
    $("peers").tBodies[0].replaceChildren(...rows);
    if (!rows.length) {
      $("peers").tBodies[0].append(el("tr", {}, el("td", { colspan: 9, class: "muted",
        text: "No peers yet: add one with p2p-node peers add ws://HOST:PORT/ws" })));
    }
  }

  // -- worker page ----------------------------------------------------------------------

  function field(label, input) {
    return el("div", { class: "field" }, el("label", { for: input.id, text: label }), input);
  }

  function buildWorker() {
    const ro = S.session.readOnly;
    const startForm = el("form", { id: "start-form", class: "panel", "aria-labelledby": "start-title", onsubmit: onStart },
      el("h2", { id: "start-title", text: "Start a miner" }),
      field("Miner type", el("input", { id: "start-type", name: "type", required: true, autocomplete: "off", placeholder: "xmrig" })),
      field("Profile id (optional)", el("input", { id: "start-profile", name: "profile", autocomplete: "off" })),
      field("Config JSON (optional)", el("textarea", { id: "start-config", name: "config", rows: 2, placeholder: "{\"threads\": 2}" })),
      el("button", { type: "submit", id: "start-button", text: "Start miner" }));
    const deployForm = el("form", { id: "deploy-form", class: "panel", "aria-labelledby": "deploy-title", onsubmit: onDeploy },
      el("h2", { id: "deploy-title", text: "Deploy a profile" }),
      el("p", { class: "muted", text: "The JSON file is sent as a bundle encrypted for this worker." }),
      field("Profile JSON file", el("input", { id: "deploy-file", name: "file", type: "file", accept: ".json,application/json", required: true })),
      field("Name on the worker (optional)", el("input", { id: "deploy-name", name: "name", autocomplete: "off" })),
      el("button", { type: "submit", id: "deploy-button", text: "Deploy profile" }));
    $("view").replaceChildren(
      el("nav", { "aria-label": "Breadcrumb" }, el("a", { href: "/", text: "← Fleet" })),
      el("h1", { id: "worker-title", text: "Worker" }),
      el("section", { class: "panel", "aria-label": "Worker facts" }, el("dl", { class: "facts", id: "worker-facts" })),
      el("section", { class: "charts", "aria-label": "Charts" },
        figure("chart-worker", "Hashrate"), figure("chart-worker-ping", "Ping")),
      el("section", { class: "panel", "aria-labelledby": "miners-title" },
        el("h2", { id: "miners-title", text: "Miners" }),
        el("div", { class: "table-wrap" }, el("table", { id: "miners" },
          el("thead", {}, el("tr", {}, ...["Miner", "Type", "Uptime", "Hashrate", "Shares", "Rejected", ro ? null : "Action"]
            .filter((h) => h !== null).map((h, i) => el("th", { scope: "col", class: i >= 2 && i <= 5 ? "num" : null, text: h })))),
          el("tbody", {})))),
      ro ? el("p", { class: "muted", text: "This dashboard is read-only: actions are off." })
        : el("div", { class: "forms" }, startForm, deployForm),
      el("section", { "aria-labelledby": "logs-title" }, el("h2", { id: "logs-title", text: "Logs" }),
        el("div", { id: "logs" }, el("p", { class: "muted", id: "logs-empty", text: "No miner running." }))));
  }

  function renderWorker(v) {
    const p = v.peers.find((x) => x.id === route.peer);
    if (!p) {
      $("worker-title").textContent = "Unknown peer";
      return;
    }
    $("worker-title").textContent = peerName(p);
    document.title = `${peerName(p)} · p2p fleet dashboard`;
    const facts = [["Peer id", p.id], ["Address", p.address || "–"], ["State", p.connected ? "connected" : "disconnected"],
      ["Protocol", p.protocol], ["Ping", fmtPing(p.pingMs)], ["Score", p.score.toFixed(1)], ["Role", p.role || "–"],
      ["Node uptime", fmtUptime(p.uptime)], ["Last seen", fmtAge(p.lastSeen)], ["Hashrate", fmtRate(p.hashrate)]];
    if (p.error) facts.push(["Last stats error", p.error]);
    $("worker-facts").replaceChildren(...facts.flatMap(([k, val]) => [el("dt", { text: k }), el("dd", { text: val })]));
    const ro = S.session.readOnly;
    const rows = p.miners.map((m) => el("tr", { "data-miner": m.name },
      el("th", { scope: "row", text: m.name }), el("td", { text: m.type }),
      el("td", { class: "num", text: fmtUptime(m.uptime) }), el("td", { class: "num", text: fmtRate(m.hashrate) }),
      el("td", { class: "num", text: String(m.shares) }), el("td", { class: "num", text: String(m.rejected) }),
      ro ? null : el("td", {}, el("button", { type: "button", class: "secondary", "data-stop": m.name,
        "aria-label": `Stop miner ${m.name}`, text: "Stop", onclick: () => onStop(p.id, m.name) }))));
    const body = $("miners").tBodies[0];
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: ro ? 6 : 7, class: "muted", text: "No miner running." })));
    syncLogs(p);
  }

  function syncLogs(p) {
    const names = new Set(p.miners.map((m) => m.name));
    for (const name of Object.keys(S.logs)) {
      if (!names.has(name)) {
        clearInterval(S.logTimers[name]);
        delete S.logTimers[name];
        S.logs[name].section.remove();
        delete S.logs[name];
      }
    }
    for (const name of names) {
      if (S.logs[name]) continue;
      const pre = el("pre", { class: "log", tabindex: 0, "data-log": name, "aria-label": `Log of ${name}` });
      const section = el("section", { class: "panel" }, el("h3", { text: "Log: " + name }), pre);
      $("logs").append(section);
      S.logs[name] = { section: section, pre: pre, since: 0, lines: [] };
      const poll = () => pollLog(p.id, name);
      poll();
      S.logTimers[name] = setInterval(poll, 2000);
    }
    $("logs-empty").hidden = names.size > 0;
  }

  async function pollLog(peer, name) {
    const entry = S.logs[name];
    if (!entry || entry.busy) return;
    entry.busy = true;
    try {
      const q = new URLSearchParams({ peer: peer, miner: name, since: String(entry.since) });
      const res = await api("/api/logs?" + q.toString());
      entry.since = res.at;
      if (res.lines.length) {
        entry.lines = entry.lines.concat(res.lines).slice(-500);
        const atBottom = entry.pre.scrollTop + entry.pre.clientHeight >= entry.pre.scrollHeight - 4;
        entry.pre.textContent = entry.lines.join("\n");
        if (atBottom) entry.pre.scrollTop = entry.pre.scrollHeight;
      }
    } catch (e) {
      entry.pre.textContent = e.message;
    } finally {
      entry.busy = false;
    }
  }

  async function busy(button, run) {
    button.disabled = true;
    try { await run(); } catch (e) { showError(e.message); } finally { button.disabled = false; }
  }

  function onStart(ev) {
    ev.preventDefault();
    busy($("start-button"), async () => {
      const res = await post("/api/miner/start", { peer: route.peer, type: $("start-type").value.trim(),
        profile: $("start-profile").value.trim() || null, config: $("start-config").value });
      showNotice(`Started miner ${res.minerName}.`);
    });
  }

  function onStop(peer, name) {
    const button = document.querySelector(`button[data-stop="${CSS.escape(name)}"]`);
    busy(button, async () => {
      await post("/api/miner/stop", { peer: peer, miner: name });
      showNotice(`Stopped miner ${name}.`);
    });
  }

  function onDeploy(ev) {
    ev.preventDefault();
    busy($("deploy-button"), async () => {
      const form = new FormData();
      form.append("peer", route.peer);
      form.append("name", $("deploy-name").value.trim());
      form.append("file", $("deploy-file").files[0]);
      const res = await post("/api/deploy", form);
      showNotice(`Deployed profile ${res.name}.`);
    });
  }

  // -- live updates ---------------------------------------------------------------------

  function render() {
    const v = S.view;
    $("node-label").textContent = `${v.node.name} · ${v.node.id.slice(0, 12)}`;
    if (route.page === "fleet") renderFleet(v); else renderWorker(v);
    drawCharts();
  }

  function setLive(on, text) {
    const live = $("live");
    live.classList.toggle("on", on);
    live.classList.toggle("off", !on);
    $("live-text").textContent = text;
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("state", (ev) => {
      const data = JSON.parse(ev.data);
      addPoint(data.point);
      S.view = data.state;
      render();
      setLive(true, "live · updated " + Charts.clock(data.state.at));
    });
    source.addEventListener("error", () => setLive(false, "reconnecting…"));
  }

  async function main() {
    try {
      S.session = await api("/api/session");
      $("interval").textContent = String(S.session.interval);
      const history = await api("/api/history");
      S.t = history.t;
      S.series = history.series;
      if (route.page === "fleet") buildFleet(); else buildWorker();
      connect();
    } catch (e) {
      showError(e.message);
      setLive(false, "offline");
    }
    let resize = null;
    window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(drawCharts, 150); });
  }

  main();
})();
