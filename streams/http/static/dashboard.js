// Live end-user dashboard: plain JS, no framework, nothing fetched but this server's own endpoints.
// Data arrives by Server-Sent Events on /api/v1/stream (see streams/http/live.py for the message shape),
// read with fetch() rather than EventSource, because EventSource cannot send the Authorization header
// and a token in the URL would end up in proxy and server logs. When the server asks for a token (401)
// the page shows a form; the token is kept in sessionStorage (this tab only) and sent on every request.
// a "full" message carries each subscription's last-hour history; later ones carry one "point" each,
// which is appended here. Cards are built once per subscription and updated in place.
"use strict";

(function () {
  const HOUR = 3600 * 1000;
  const CLASSES = ["internal", "external"];  // the classes, in the order the server's documents list them
  const STALE_AFTER = 10000;   // ms without a message before the page reconnects by itself
  const cards = new Map();     // subscription id -> {root, refs, history, data}
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString() : "–");
  const TOKEN_KEY = "endusers.token";
  let source = null;           // the AbortController of the open stream
  let lastMessage = 0;
  let retryDelay = 1000;
  let retryTimer = null;

  // --- levels ----------------------------------------------------------------------------------
  // Level is the threshold percent the engine currently holds: 0 normal, >0 warning (80 by default),
  // >=100 critical. A null capacity is unlimited (no level is ever raised).
  function severity(level, capacity) {
    if (capacity === null || capacity === undefined) return "unlimited";
    if (level >= 100) return "critical";
    if (level > 0) return "warning";
    return "normal";
  }
  const RANK = { unlimited: 0, normal: 1, warning: 2, critical: 3 };

  // --- DOM -------------------------------------------------------------------------------------
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function createCard(id) {
    const root = $("card-template").content.firstElementChild.cloneNode(true);
    root.dataset.subscription = id;
    root.dataset.testid = "card-" + id;
    const q = (sel) => root.querySelector(sel);
    q(".name").textContent = id;
    const refs = { name: q(".name"), platform: q(".platform"), records: q(".records"),
      anonymous: q(".anonymous"), excluded: q(".excluded"), thresholds: q(".thresholds"), chart: q(".chart"),
      domains: q(".domains"), year: q(".year"), yearFrom: q(".year-from"), forecast: q(".forecast"),
      runtimes: q(".runtimes tbody"), providers: q(".providers tbody"), events: q(".events tbody"),
      shared: q(".shared-warning"), tools: q(".admin-tools"), classes: {} };
    refs.tools.dataset.testid = "tools-" + id;
    q(".whatif").dataset.testid = "whatif-" + id;
    q(".whatif-result").dataset.testid = "whatif-result-" + id;
    q(".explain").dataset.testid = "explain-" + id;
    q(".explain-result").dataset.testid = "explain-result-" + id;
    q(".whatif").addEventListener("submit", (e) => { e.preventDefault(); whatIf(id, e.target); });
    q(".explain").addEventListener("submit", (e) => { e.preventDefault(); explainPerson(id, e.target); });
    refs.shared.dataset.testid = "shared-" + id;
    refs.records.dataset.testid = "records-" + id;
    refs.anonymous.dataset.testid = "anonymous-" + id;
    refs.excluded.dataset.testid = "excluded-" + id;
    refs.domains.dataset.testid = "domains-" + id;
    refs.year.dataset.testid = "year-" + id;
    refs.forecast.dataset.testid = "forecast-" + id;
    refs.chart.dataset.testid = "chart-" + id;
    q(".runtimes").dataset.testid = "runtimes-" + id;
    q(".providers").dataset.testid = "providers-" + id;
    q(".events").dataset.testid = "events-" + id;
    const shape = q(".klass");
    for (const cls of CLASSES) {
      const box = shape.cloneNode(true);
      box.dataset.class = cls;
      box.querySelector(".label").textContent = cls[0].toUpperCase() + cls.slice(1);
      shape.before(box);
      const r = { box, count: box.querySelector(".count"), capacity: box.querySelector(".capacity"),
        fill: box.querySelector(".fill"), pct: box.querySelector(".pct"), badge: box.querySelector(".badge") };
      r.count.dataset.testid = `count-${id}-${cls}`;
      r.capacity.dataset.testid = `capacity-${id}-${cls}`;
      r.badge.dataset.testid = `level-${id}-${cls}`;
      refs.classes[cls] = r;
    }
    shape.remove();
    return { root, refs, history: [], data: null, year: [], forecast: null, loaded: 0 };
  }

  function updateClass(r, count, capacity, level) {
    const sev = severity(level, capacity);
    r.box.className = "klass lvl-" + sev;
    r.count.textContent = fmt(count);
    r.badge.textContent = sev === "unlimited" ? "unlimited" : level > 0 ? `level ${level}%` : "normal";
    if (capacity === null || capacity === undefined) {
      r.capacity.textContent = "/ unlimited";
      r.pct.textContent = "no capacity limit";
      r.fill.style.width = "0";
    } else if (capacity === 0) {
      r.capacity.textContent = "/ 0";
      r.pct.textContent = count > 0 ? "over: none licensed" : "none licensed";
      r.fill.style.width = count > 0 ? "100%" : "0";
    } else {
      const pct = (count * 100) / capacity;
      r.capacity.textContent = "/ " + fmt(capacity);
      r.pct.textContent = `${pct.toFixed(1)}% of capacity` + (count > capacity ? ` (${fmt(count - capacity)} over)` : "");
      r.fill.style.width = Math.min(100, pct).toFixed(2) + "%";
    }
    return sev;
  }

  function fillRows(tbody, rows, columns) {
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "none", "none");
      td.colSpan = columns;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    for (const row of rows) {
      const tr = el("tr");
      for (const cell of row) tr.appendChild(cell instanceof Node ? wrapTd(cell) : el("td", cell));
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }
  function wrapTd(node) { const td = el("td"); td.appendChild(node); return td; }

  function eventTime(text) {
    const d = new Date(text);
    if (isNaN(d)) return text || "";
    const clock = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    if (new Date().toDateString() === d.toDateString()) return clock;
    return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + clock;
  }

  function updateCard(card, data) {
    // the stream sends a subscription's settings only when they change: keep the last ones
    if (!("settings" in data) && card.data) data.settings = card.data.settings;
    card.data = data;
    const r = card.refs;
    const settings = data.settings || {};
    const capacity = settings.capacity || {};
    const levels = data.levels || {};
    r.platform.textContent = (settings.platform || "").toUpperCase();
    let worst = "unlimited";
    for (const cls of CLASSES) {
      const cap = capacity[cls] === undefined ? null : capacity[cls];
      const sev = updateClass(r.classes[cls], data[cls] || 0, cap, levels[cls] || 0);
      if (RANK[sev] > RANK[worst]) worst = sev;
    }
    card.root.className = "card level-" + (worst === "unlimited" ? "normal" : worst);
    r.records.textContent = fmt(data.records);
    r.anonymous.textContent = fmt(data.anonymous_sessions);
    r.excluded.textContent = fmt(data.excluded || 0);
    // external users per email domain: only in an admin's stream, and only when there are some
    const report = data.external_domains;
    r.domains.hidden = !report || report.top.length === 0;
    if (report) {
      const external = data.external || 0;
      const share = (n) => (external ? ((n * 100) / external).toFixed(1) + "%" : "");
      const rows = report.top.map(([domain, n]) => [domain, fmt(n), share(n)]);
      if (report.other_domains > 0) {
        rows.push([`${fmt(report.other_domains)} other domain(s)`, fmt(report.other_individuals), ""]);
      }
      fillRows(r.domains.querySelector("tbody"), rows, 3);
    }
    // what-if and explain reveal settings and identifiers: admins only (their stream carries the
    // admin-only external_domains report; the server checks the token again on every request)
    r.tools.hidden = !("external_domains" in data);
    r.thresholds.textContent = (settings.thresholds || [80, 90, 100]).map((t) => t + "%").join(" ");
    // Emails or logins held by many records: they still count as one individual each (SPEC), so
    // the admin should look at them (GET /api/v1/subscriptions/{id}/shared-identifiers).
    const shared = data.shared_identifiers || 0;
    r.shared.hidden = shared === 0;
    r.shared.textContent = shared === 0 ? "" :
      `⚠ ${fmt(shared)} shared email${shared === 1 ? "" : "s"} or login${shared === 1 ? "" : "s"}: ` +
      `held by more than ${settings.shared_identifier_threshold || 5} records, counted as one user`;
    const runtimes = Object.entries(data.runtimes || {}).sort((a, b) => a[0].localeCompare(b[0]));
    fillRows(r.runtimes, runtimes.map(([name, s]) => [name, fmt(s.internal), fmt(s.external), fmt(s.records)]), 4);
    const providers = Object.entries(data.providers || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    fillRows(r.providers, providers.map(([name, n]) => [name, fmt(n)]), 2);
    fillRows(r.events, (data.events || []).map((e) => {
      const change = el("span", `${e.previous_level}% → ${e.level}%`, e.direction === "up" ? "up" : "down");
      const ratio = el("span", `${fmt(e.count)} / ${fmt(e.capacity)}`);
      if (e.exceeded) ratio.append(" ", el("span", "exceeded", "tag"));
      return [eventTime(e.time), e.user_class, change, ratio];
    }), 4);
    drawChart(card);
  }

  // --- admin tools: what-if (POST .../preview) and explain (POST .../explain) ---------------------
  async function post(id, path, body) {
    const response = await fetch("/api/v1/subscriptions/" + encodeURIComponent(id) + path, {
      method: "POST", headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(body), cache: "no-store" });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return answer;
  }

  async function whatIf(id, form) {
    const out = form.querySelector(".whatif-result");
    const body = {};
    const domains = form.elements.domains.value.split(/[\s,]+/).filter(Boolean);
    if (domains.length) body.domains = domains;
    const capacity = {};
    for (const cls of CLASSES) {
      if (form.elements[cls].value !== "") capacity[cls] = Number(form.elements[cls].value);
    }
    if (Object.keys(capacity).length) body.capacity = capacity;
    if (Object.keys(body).length === 0) { out.textContent = "give a setting to try"; return; }
    out.textContent = "…";
    try {
      const a = await post(id, "/preview", body);
      const signed = (n) => (n > 0 ? "+" : "") + fmt(n);
      out.textContent = CLASSES.map((c) =>
        `${c} ${fmt(a.current[c])} → ${fmt(a.preview[c])} (${signed(a.difference[c])}), ` +
        `level ${a.current.levels[c]}% → ${a.preview.levels[c]}%`).join("; ");
    } catch (err) {
      out.textContent = "not previewed: " + err.message;
    }
  }

  async function explainPerson(id, form) {
    const out = form.querySelector(".explain-result");
    const who = form.elements.who.value.trim();
    if (!who) { out.textContent = "give an email or a username"; return; }
    out.textContent = "…";
    try {
      const a = await post(id, "/explain", who.includes("@") ? { email: who } : { username: who });
      const lines = [`${a.found} record(s) carry it`];
      for (const entry of a.records) {
        const rec = entry.record;
        const where = `${rec.runtime} · ${rec.provider}`;
        if (!rec.counted) { lines.push(`${where}: not counted (${rec.why_not_counted || "no facts"})`); continue; }
        const person = entry.individual;
        const joined = person.joined_by.length ? `, joined by ${[...new Set(person.joined_by.map((j) => j.field))].join(" and ")}` : "";
        lines.push(`${where}: person #${person.number + 1} of ${person.records.length} record(s)${joined}; ` +
                   person.rule);
      }
      out.replaceChildren(...lines.map((line) => el("p", line)));
    } catch (err) {
      out.textContent = "not explained: " + err.message;
    }
  }

  // --- chart (inline SVG) ------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function niceCeil(v) {
    if (v <= 5) return 5;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  // What both charts share: the size of the drawing, the scale (up to the data and to the capacities
  // that fit on it), the grid lines with their labels and a line per capacity. The caller adds its
  // polylines to `parts` and passes the frame to `showChart`.
  function chartFrame(card, node, minHeight, defaultHeight, dataTop, gridFractions) {
    const w = Math.max(200, Math.round(node.clientWidth || 320));
    const h = Math.max(minHeight, Math.round(node.clientHeight || defaultHeight));
    const pad = { l: 4, r: 4, t: 8, b: 4 };
    const capacity = (card.data && card.data.settings && card.data.settings.capacity) || {};
    const caps = CLASSES.filter((c) => typeof capacity[c] === "number" &&
      capacity[c] > 0 && capacity[c] <= Math.max(dataTop, 1) * 1.5);
    let top = dataTop;
    for (const c of caps) top = Math.max(top, capacity[c]);
    top = niceCeil(top * 1.05);
    const y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
    const parts = [];
    for (const frac of gridFractions) {
      const yy = y(top * frac).toFixed(1);
      parts.push(svg("line", { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy, class: "grid" }));
      if (frac > 0) parts.push(svg("text", { x: pad.l + 2, y: (+yy + 10).toFixed(1) }, fmt(Math.round(top * frac))));
    }
    for (const c of caps) {
      const yy = y(capacity[c]).toFixed(1);
      parts.push(svg("line", { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy, class: "cap " + c }));
    }
    return { node, w, h, pad, y, parts };
  }
  function showChart(frame) {
    frame.node.setAttribute("viewBox", `0 0 ${frame.w} ${frame.h}`);
    frame.node.replaceChildren(...frame.parts);
  }
  function drawChart(card) {
    const now = Date.now();
    const points = card.history.filter((p) => p[0] >= now - HOUR);
    let top = 0;
    for (const p of points) top = Math.max(top, p[1], p[2]);
    const frame = chartFrame(card, card.refs.chart, 80, 130, top, [0, 0.5, 1]);
    const { w, pad, y, parts } = frame;
    const x = (t) => pad.l + ((t - (now - HOUR)) / HOUR) * (w - pad.l - pad.r);
    CLASSES.forEach((c, i) => {
      if (points.length === 0) return;
      const coords = points.map((p) => `${x(p[0]).toFixed(1)},${y(p[i + 1]).toFixed(1)}`);
      if (points.length === 1) coords.push(`${x(now).toFixed(1)},${y(points[0][i + 1]).toFixed(1)}`);
      parts.push(svg("polyline", { points: coords.join(" "), class: "line " + c }));
    });
    showChart(frame);
  }

  // --- 12 months of daily maxima and the forecast (fetched, not streamed: they change once a day) ----
  const YEAR_REFRESH = 5 * 60 * 1000;
  async function loadYear(id, card) {
    card.loaded = Date.now();
    const from = new Date(Date.now() - 365 * 86400000).toISOString().slice(0, 10);
    const base = "/api/v1/subscriptions/" + encodeURIComponent(id);
    try {
      const [hist, sub] = await Promise.all([
        fetch(base + "/history?from=" + from, { headers: authHeaders() }).then((r) => (r.ok ? r.json() : null)),
        fetch(base, { headers: authHeaders() }).then((r) => (r.ok ? r.json() : null)),
      ]);
      if (hist) card.year = hist.entries || [];
      if (sub) card.forecast = sub.forecast || null;
    } catch (err) { return; }
    drawYear(card);
  }
  function forecastText(forecast) {
    const lines = [];
    for (const cls of CLASSES) {
      const reaches = (forecast && forecast[cls] && forecast[cls].reaches) || {};
      const ahead = Object.entries(reaches).filter(([, d]) => d).sort((a, b) => a[1].localeCompare(b[1]));
      if (ahead.length === 0) continue;
      let text = `at this rate, ${cls} reaches ${ahead[0][0]}% around ${ahead[0][1]}`;
      if (reaches["100"] && ahead[0][0] !== "100") text += ` and 100% around ${reaches["100"]}`;
      lines.push(text);
    }
    return lines.length ? lines.join("; ") : "no forecast: too little history, or not growing";
  }
  function drawYear(card) {
    const days = card.year;
    let top = 0;
    for (const d of days) top = Math.max(top, d.internal.max, d.external.max);
    const frame = chartFrame(card, card.refs.year, 60, 90, top, [0, 1]);
    const { w, pad, y, parts } = frame;
    const span = 365;
    const start = Date.now() - span * 86400000;
    const x = (period) => pad.l + ((Date.parse(period + "T12:00:00Z") - start) / (span * 86400000)) * (w - pad.l - pad.r);
    for (const c of CLASSES) {
      if (days.length === 0) continue;
      const coords = days.map((d) => `${x(d.period).toFixed(1)},${y(d[c].max).toFixed(1)}`);
      if (days.length === 1) coords.push(`${(w - pad.r).toFixed(1)},${y(days[0][c].max).toFixed(1)}`);
      parts.push(svg("polyline", { points: coords.join(" "), class: "line " + c }));
    }
    showChart(frame);
    card.refs.yearFrom.textContent = new Date(start).toISOString().slice(0, 7);
    card.refs.forecast.textContent = forecastText(card.forecast);
  }

  // --- messages --------------------------------------------------------------------------------
  function applyFilter() {
    const text = $("filter").value.trim().toLowerCase();
    for (const [id, card] of cards) card.root.hidden = text !== "" && !id.toLowerCase().includes(text);
  }

  function onCounts(message) {
    const container = $("cards");
    const subs = message.subscriptions || {};
    const ids = Object.keys(subs).sort();
    for (const [id, card] of cards) {
      if (!(id in subs)) { card.root.remove(); cards.delete(id); }
    }
    let previous = null;
    for (const id of ids) {
      const entry = subs[id];
      let card = cards.get(id);
      if (!card) {
        card = createCard(id);
        cards.set(id, card);
      }
      // keep DOM order = sorted ids
      const expectedAfter = previous ? previous.root : null;
      if ((expectedAfter ? expectedAfter.nextElementSibling : container.firstElementChild) !== card.root) {
        container.insertBefore(card.root, expectedAfter ? expectedAfter.nextElementSibling : container.firstElementChild);
      }
      if (Array.isArray(entry.history)) card.history = entry.history.slice();
      if (Array.isArray(entry.point)) {
        const last = card.history[card.history.length - 1];
        if (!last || entry.point[0] > last[0]) card.history.push(entry.point);
      }
      const cutoff = (message.time || Date.now()) - HOUR;
      while (card.history.length && card.history[0][0] < cutoff) card.history.shift();
      updateCard(card, entry);
      if (Date.now() - card.loaded > YEAR_REFRESH) loadYear(id, card);
      previous = card;
    }
    $("empty").hidden = ids.length > 0;
    if (ids.length === 0) $("empty").textContent = "No subscriptions yet.";
    applyFilter();
    const when = new Date(message.time || Date.now());
    $("updated").textContent = `${ids.length} subscription${ids.length === 1 ? "" : "s"} · updated ${when.toLocaleTimeString([], { hour12: false })}`;
  }

  function setStatus(kind, text) {
    const node = $("status");
    node.className = "status " + kind;
    node.textContent = text;
  }

  function showProblem(text) {
    const node = $("problem");
    node.hidden = !text;
    node.textContent = text || "";
  }

  // --- access ----------------------------------------------------------------------------------
  function token() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (err) { return ""; } }
  function authHeaders() { const t = token(); return t ? { Authorization: "Bearer " + t } : {}; }

  function showLogin(message) {
    if (source) { source.abort(); source = null; }
    lastMessage = 0;
    for (const card of cards.values()) card.root.remove();
    cards.clear();
    $("empty").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("signout").hidden = true;
    setStatus("down", "token needed");
    $("token").focus();
  }

  function signIn(ev) {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch (err) { /* private mode: this page only */ }
    $("token").value = "";
    $("login").hidden = true;
    $("empty").hidden = false;
    connect();
  }

  function signOut() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (err) { /* nothing stored */ }
    showLogin("");
  }

  // --- stream (Server-Sent Events over fetch) -------------------------------------------------------
  function dispatch(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length === 0) return;
    lastMessage = Date.now();
    if (name === "counts") {
      setStatus("live", "live");
      showProblem("");
      try { onCounts(JSON.parse(data.join("\n"))); } catch (err) { console.error(err); }
    } else if (name === "problem") {
      setStatus("down", "store unavailable");
      try { showProblem(JSON.parse(data.join("\n")).error); } catch (err) { showProblem("store unavailable"); }
    }
  }

  function retryLater() {
    setStatus("down", "reconnecting");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }

  async function connect() {
    clearTimeout(retryTimer);
    if (source) source.abort();
    const controller = new AbortController();
    source = controller;
    setStatus("connecting", "connecting");
    let response;
    try {
      response = await fetch("/api/v1/stream", { headers: authHeaders(), cache: "no-store", signal: controller.signal });
    } catch (err) {
      if (!controller.signal.aborted) retryLater();
      return;
    }
    if (response.status === 401 || response.status === 403) {
      showLogin(token() ? "That token was not accepted." : "");
      return;
    }
    if (!response.ok || !response.body) { retryLater(); return; }
    retryDelay = 1000;
    $("login").hidden = true;
    $("signout").hidden = !token();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;   // replaced by a newer connection, or signed out
    }
    if (source === controller) retryLater();   // the server ended the stream: reconnect
  }

  setInterval(() => {   // a silent connection (proxy, sleeping laptop) is replaced
    if (lastMessage && Date.now() - lastMessage > STALE_AFTER) {
      lastMessage = Date.now();
      setStatus("down", "reconnecting");
      connect();
    }
  }, 2000);
  window.addEventListener("resize", () => { for (const card of cards.values()) drawChart(card); });
  document.addEventListener("DOMContentLoaded", () => {
    $("filter").addEventListener("input", applyFilter);
    $("login").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    connect();
  });
})();
