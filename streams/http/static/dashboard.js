// Live end-user dashboard: plain JS, no framework, nothing fetched but this server's own endpoints.
// Data arrives by Server-Sent Events on /api/v1/stream (the format is in docs/http.md): one snapshot of
// the token's scope, then only what changed, each message with an id that a reconnect sends back
// (Last-Event-ID) to get only what it missed. The stream is read with fetch() rather than EventSource,
// because EventSource cannot send the Authorization header and a token in the URL would end up in proxy
// and server logs. When the server asks for a token (401) the page shows a form; the token is kept in
// sessionStorage (this tab only) and sent on every request.
// The first screen is the fleet table (#/); a subscription's page (#/s/<id>) holds its card and charts.
"use strict";

(function () {
  const HOUR = 3600 * 1000;
  const DAY = 24 * HOUR;
  const CLASSES = ["internal", "external"];  // the classes, in the order the server's documents list them
  const STALE_AFTER = 10000;   // ms without a message or heartbeat before the page reconnects by itself
  const PAGE = 100;            // fleet rows per page: the table stays fast at thousands of subscriptions
  const subs = new Map();      // subscription id -> its entry (the stream's groups merged, and "history")
  const versions = new Map();  // subscription id -> a number bumped on every change (rows rebuilt only then)
  const cards = new Map();     // subscription id -> its card (only the one of the open detail page)
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString() : "–");
  const TOKEN_KEY = "endusers.token";
  let source = null;           // the AbortController of the open stream
  let lastEventId = "";        // the id of the last snapshot or change applied
  let lastMessage = 0;
  let retryDelay = 1000;
  let retryTimer = null;
  let loaded = false;          // a snapshot has arrived
  const view = { key: "use", dir: -1, text: "", level: "", page: 0, focus: null };

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
  const SEVERITIES = ["critical", "warning", "normal", "unlimited"];

  // --- DOM -------------------------------------------------------------------------------------
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function clock(ms) {
    const d = new Date(ms);
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (new Date().toDateString() === d.toDateString()) return time;
    return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + time;
  }

  // --- one subscription's figures, as the table shows and sorts them --------------------------------
  function capacityOf(entry, cls) {
    const capacity = (entry.settings && entry.settings.capacity) || {};
    return capacity[cls] === undefined ? null : capacity[cls];
  }
  function share(entry, cls) {   // count / capacity in percent; -1 when unlimited
    const cap = capacityOf(entry, cls);
    const count = entry[cls] || 0;
    if (cap === null) return -1;
    if (cap === 0) return count > 0 ? Infinity : 0;
    return (count * 100) / cap;
  }
  function worst(entry) {
    let w = "unlimited";
    for (const cls of CLASSES) {
      const sev = severity((entry.levels || {})[cls] || 0, capacityOf(entry, cls));
      if (RANK[sev] > RANK[w]) w = sev;
    }
    return w;
  }
  function lastEvent(entry) {
    const h = entry.history || [];
    return h.length ? h[h.length - 1][0] : 0;
  }
  function trendDelta(entry) {
    const t = entry.trend || {};
    const i = t.internal || [], e = t.external || [];
    if (i.length === 0) return 0;
    return ((entry.internal || 0) + (entry.external || 0)) - (i[0] + (e[0] || 0));
  }
  function warnings(entry) {
    const out = [];
    if (entry.shared_identifiers) out.push(`${fmt(entry.shared_identifiers)} shared`);
    for (const cls of CLASSES) if (share(entry, cls) > 100) out.push(`${cls} over capacity`);
    return out;
  }
  const SORTS = {
    name: (id) => id,
    platform: (id, e) => ((e.settings && e.settings.platform) || "").toLowerCase(),
    internal: (id, e) => [share(e, "internal"), e.internal || 0],
    external: (id, e) => [share(e, "external"), e.external || 0],
    use: (id, e) => [Math.max(share(e, "internal"), share(e, "external")), (e.internal || 0) + (e.external || 0)],
    level: (id, e) => [RANK[worst(e)], Math.max(share(e, "internal"), share(e, "external"))],
    trend: (id, e) => trendDelta(e),
    last: (id, e) => lastEvent(e),
    warnings: (id, e) => warnings(e).length,
  };
  function compare(a, b) {
    if (Array.isArray(a)) {
      for (let i = 0; i < a.length; i++) { const c = compare(a[i], b[i]); if (c) return c; }
      return 0;
    }
    if (typeof a === "string") return a.localeCompare(b);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  // --- the fleet table (first screen) ------------------------------------------------------------
  const rowCache = new Map();  // subscription id -> {tr, version}
  let renderPending = false;

  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; render(); });
  }

  function visibleIds() {
    const text = view.text;
    const key = SORTS[view.key];
    const rows = [];
    for (const [id, entry] of subs) {
      if (text && !id.toLowerCase().includes(text) &&
          !((entry.settings && entry.settings.platform) || "").toLowerCase().includes(text)) continue;
      if (view.level && worst(entry) !== view.level) continue;
      rows.push([key(id, entry), id]);
    }
    rows.sort((a, b) => view.dir * compare(a[0], b[0]) || a[1].localeCompare(b[1]));
    return rows.map((r) => r[1]);
  }

  function classCell(id, entry, cls) {
    const td = el("td", null, "col-class");
    const count = el("span", fmt(entry[cls] || 0), "count");
    count.dataset.testid = `count-${id}-${cls}`;
    const cap = capacityOf(entry, cls);
    const capacity = el("span", cap === null ? "/ unlimited" : "/ " + fmt(cap), "capacity");
    capacity.dataset.testid = `capacity-${id}-${cls}`;
    const line = el("div", null, "numbers");
    line.append(count, " ", capacity);
    td.appendChild(line);
    if (cap !== null) {
      const pct = share(entry, cls);
      const sev = severity((entry.levels || {})[cls] || 0, cap);
      const bar = el("div", null, "bar lvl-" + sev);
      const fill = el("div", null, "fill");
      fill.style.width = Math.min(100, pct === Infinity ? 100 : pct).toFixed(1) + "%";
      bar.appendChild(fill);
      bar.title = pct === Infinity ? "over: none licensed" : `${pct.toFixed(1)}% of capacity`;
      td.appendChild(bar);
    }
    return td;
  }

  function sparkline(entry) {
    const t = entry.trend || {};
    const series = CLASSES.map((c) => (t[c] || []).concat([entry[c] || 0]));
    const n = series[0].length;
    const w = 96, h = 26;
    const node = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "spark", role: "img" });
    let top = 1;
    for (const s of series) for (const v of s) top = Math.max(top, v);
    const x = (i) => (n === 1 ? w - 2 : 1 + (i * (w - 3)) / (n - 1));
    const y = (v) => h - 2 - (v / top) * (h - 4);
    CLASSES.forEach((c, k) => {
      const pts = series[k].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      if (n === 1) pts.unshift(`1,${y(series[k][0]).toFixed(1)}`);
      node.appendChild(svg("polyline", { points: pts.join(" "), class: "line " + c }));
    });
    const delta = trendDelta(entry);
    node.setAttribute("aria-label", `change over the day: ${delta > 0 ? "+" : ""}${fmt(delta)}`);
    return node;
  }

  function buildRow(id, entry) {
    const tr = el("tr");
    tr.dataset.subscription = id;
    tr.dataset.testid = "row-" + id;
    tr.tabIndex = -1;
    const sev = worst(entry);
    tr.className = "row sev-" + sev;
    const name = el("td", null, "col-name");
    const link = el("a", id, "trunc");
    link.href = "#/s/" + encodeURIComponent(id);
    link.title = id;
    link.tabIndex = -1;
    name.appendChild(link);
    const platform = el("td", ((entry.settings && entry.settings.platform) || "").toUpperCase(), "col-platform");
    const use = Math.max(share(entry, "internal"), share(entry, "external"));
    const useCell = el("td", use < 0 ? "–" : use === Infinity ? "over" : use.toFixed(1) + "%", "col-use");
    const level = el("td", null, "col-level");
    const badge = el("span", sev, "badge lvl-" + sev);
    badge.dataset.testid = "level-" + id;
    const levels = entry.levels || {};
    badge.title = CLASSES.map((c) => `${c} ${levels[c] || 0}%`).join(", ");
    level.appendChild(badge);
    const trend = el("td", null, "col-trend");
    trend.appendChild(sparkline(entry));
    const last = lastEvent(entry);
    const lastCell = el("td", last ? clock(last) : "–", "col-last");
    const warn = warnings(entry);
    const warnCell = el("td", warn.join(", "), "col-warnings");
    if (warn.length) { warnCell.title = warn.join(", "); warnCell.classList.add("has-warnings"); }
    tr.append(name, platform, classCell(id, entry, "internal"), classCell(id, entry, "external"), useCell, level,
      trend, lastCell, warnCell);
    return tr;
  }

  function renderLevelCounts() {
    const counts = { critical: 0, warning: 0, normal: 0, unlimited: 0 };
    for (const entry of subs.values()) counts[worst(entry)] += 1;
    const box = $("level-counts");
    if (box.childElementCount === 0) {
      for (const sev of SEVERITIES) {
        const b = el("button", null, "level-count lvl-" + sev);
        b.type = "button";
        b.dataset.level = sev;
        b.dataset.testid = "level-count-" + sev;
        b.addEventListener("click", () => {
          view.level = view.level === sev ? "" : sev;
          view.page = 0;
          render();
        });
        box.appendChild(b);
      }
    }
    for (const b of box.children) {
      const sev = b.dataset.level;
      b.textContent = `${fmt(counts[sev])} ${sev}`;
      b.setAttribute("aria-pressed", String(view.level === sev));
    }
  }

  function render() {
    if (!$("detail-view").hidden) { renderDetail(); return; }
    renderLevelCounts();
    for (const th of document.querySelectorAll("#fleet th")) {
      th.setAttribute("aria-sort", th.dataset.key === view.key ? (view.dir > 0 ? "ascending" : "descending") : "none");
    }
    const ids = visibleIds();
    const pages = Math.max(1, Math.ceil(ids.length / PAGE));
    view.page = Math.min(view.page, pages - 1);
    const shown = ids.slice(view.page * PAGE, (view.page + 1) * PAGE);
    const focused = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest("#fleet-rows tr");
    const rows = shown.map((id) => {
      let cached = rowCache.get(id);
      if (!cached || cached.version !== versions.get(id)) {
        cached = { tr: buildRow(id, subs.get(id)), version: versions.get(id) };
        rowCache.set(id, cached);
      }
      return cached.tr;
    });
    const active = view.focus !== null && shown.includes(view.focus) ? view.focus : shown[0];
    for (const tr of rows) tr.tabIndex = tr.dataset.subscription === active ? 0 : -1;
    $("fleet-rows").replaceChildren(...rows);
    if (focused && view.focus && rowCache.has(view.focus) && shown.includes(view.focus)) rowCache.get(view.focus).tr.focus();
    const total = subs.size;
    $("fleet-total").textContent = !loaded ? "Waiting for data…" : total === 0 ? "No subscriptions yet." :
      `${fmt(ids.length)} of ${fmt(total)} subscription${total === 1 ? "" : "s"}`;
    $("page-info").textContent = ids.length ? `${fmt(view.page * PAGE + 1)}–${fmt(view.page * PAGE + shown.length)} of ${fmt(ids.length)}` : "";
    $("page-prev").disabled = view.page === 0;
    $("page-next").disabled = view.page >= pages - 1;
    if (loaded && performance.getEntriesByName("fleet").length === 0) performance.mark("fleet");
  }

  function sortBy(key) {
    if (view.key === key) view.dir = -view.dir;
    else { view.key = key; view.dir = key === "name" || key === "platform" ? 1 : -1; }
    view.page = 0;
    render();
  }

  // keyboard: one row is in the tab order; arrows, Home/End and PageUp/PageDown move, Enter opens
  function onRowKey(ev) {
    const tr = ev.target.closest("tr");
    if (!tr) return;
    const rows = [...$("fleet-rows").children];
    let i = rows.indexOf(tr);
    const moves = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: rows.length - 1 };
    if (ev.key === "Enter") { ev.preventDefault(); openDetail(tr.dataset.subscription); return; }
    if (ev.key === "PageDown" || ev.key === "PageUp") {
      ev.preventDefault();
      const before = view.page;
      view.page = Math.max(0, view.page + (ev.key === "PageDown" ? 1 : -1));
      view.focus = null;
      render();
      if (view.page !== before) focusRow($("fleet-rows").firstElementChild);
      return;
    }
    if (!(ev.key in moves)) return;
    ev.preventDefault();
    i = Math.max(0, Math.min(rows.length - 1, moves[ev.key]));
    focusRow(rows[i]);
  }
  function focusRow(tr) {
    if (!tr) return;
    for (const r of $("fleet-rows").children) r.tabIndex = -1;
    tr.tabIndex = 0;
    view.focus = tr.dataset.subscription;
    tr.focus();
  }

  // --- the subscription card (the detail page) ---------------------------------------------------
  function createCard(id) {
    const root = $("card-template").content.firstElementChild.cloneNode(true);
    root.dataset.subscription = id;
    root.dataset.testid = "card-" + id;
    const q = (sel) => root.querySelector(sel);
    q(".name").textContent = id;
    q(".name").title = id;
    const refs = { name: q(".name"), platform: q(".platform"), records: q(".records"),
      anonymous: q(".anonymous"), excluded: q(".excluded"), thresholds: q(".thresholds"), chart: q(".chart"),
      domains: q(".domains"), year: q(".year"), forecast: q(".forecast"),
      runtimes: q(".runtimes tbody"), providers: q(".providers tbody"), events: q(".events tbody"),
      shared: q(".shared-warning"), silent: q(".silent-sources"), dormant: q(".dormant-seats"), tools: q(".admin-tools"), classes: {} };
    refs.tools.dataset.testid = "tools-" + id;
    q(".whatif").dataset.testid = "whatif-" + id;
    q(".whatif-result").dataset.testid = "whatif-result-" + id;
    q(".explain").dataset.testid = "explain-" + id;
    q(".explain-result").dataset.testid = "explain-result-" + id;
    q(".whatif").addEventListener("submit", (e) => { e.preventDefault(); whatIf(id, e.target); });
    q(".explain").addEventListener("submit", (e) => { e.preventDefault(); explainPerson(id, e.target); });
    refs.shared.dataset.testid = "shared-" + id;
    refs.silent.dataset.testid = "silent-" + id;
    refs.dormant.dataset.testid = "dormant-" + id;
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
    return { id, root, refs, history: [], data: null, year: [], forecast: null, loaded: 0 };
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
      row.forEach((cell, i) => {
        // a name (first column) is cut with an ellipsis, never broken mid-word; hovering shows it whole
        if (i === 0 && !(cell instanceof Node)) tr.appendChild(wrapTd(truncated(cell)));
        else tr.appendChild(cell instanceof Node ? wrapTd(cell) : el("td", cell));
      });
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
  function truncated(text) {
    const span = el("span", text, "trunc");
    span.title = text;
    return span;
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

  // --- charts (inline SVG) -------------------------------------------------------------------------
  // The vertical scale holds every value drawn: the counts and each capacity line. The horizontal axis
  // is labelled with real times. A single point is drawn as a dot and held to the end of the range.
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
  // series: [{cls, points: [[ms, value], ...]}]; t0..t1 the time range; ticks: [[ms, label], ...]
  function drawSeries(card, node, series, t0, t1, ticks) {
    const w = Math.max(200, Math.round(node.clientWidth || 320));
    const h = Math.max(80, Math.round(node.clientHeight || 130));
    const pad = { l: 46, r: 10, t: 8, b: 18 };
    const capacity = (card.data && card.data.settings && card.data.settings.capacity) || {};
    const caps = CLASSES.filter((c) => typeof capacity[c] === "number" && capacity[c] > 0);
    let top = 0;
    for (const s of series) for (const p of s.points) top = Math.max(top, p[1]);
    for (const c of caps) top = Math.max(top, capacity[c]);
    top = niceCeil(top * 1.05);
    const y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
    const x = (t) => pad.l + ((Math.min(t1, Math.max(t0, t)) - t0) / (t1 - t0)) * (w - pad.l - pad.r);
    const parts = [];
    for (const frac of [0, 0.5, 1]) {
      const yy = y(top * frac).toFixed(1);
      parts.push(svg("line", { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy, class: "grid" }));
      parts.push(svg("text", { x: pad.l - 4, y: (+yy + 3).toFixed(1), "text-anchor": "end" }, fmt(Math.round(top * frac))));
    }
    for (const [t, label] of ticks) {
      const xx = x(t).toFixed(1);
      parts.push(svg("line", { x1: xx, x2: xx, y1: h - pad.b, y2: h - pad.b + 3, class: "grid" }));
      parts.push(svg("text", { x: xx, y: h - 4, "text-anchor": "middle" }, label));
    }
    for (const c of caps) {
      const yy = y(capacity[c]).toFixed(1);
      parts.push(svg("line", { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy, class: "cap " + c }));
    }
    for (const s of series) {
      if (s.points.length === 0) continue;
      const coords = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      parts.push(svg("polyline", { points: coords.join(" "), class: "line " + s.cls }));
      const lastPoint = s.points[s.points.length - 1];
      parts.push(svg("circle", { cx: x(lastPoint[0]).toFixed(1), cy: y(lastPoint[1]).toFixed(1), r: 2.5, class: "dot " + s.cls }));
    }
    node.setAttribute("viewBox", `0 0 ${w} ${h}`);
    node.replaceChildren(...parts);
  }
  function timeTicks(t0, t1, step, label, width) {
    const ticks = [];
    const every = Math.max(1, Math.ceil(((t1 - t0) / step) / Math.max(2, Math.floor(width / 70))));
    for (let t = Math.ceil(t0 / step) * step, i = 0; t <= t1; t += step, i++) {
      if (i % every === 0) ticks.push([t, label(t)]);
    }
    return ticks;
  }
  function hm(t) { return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false }); }

  function drawChart(card) {
    const now = Date.now();
    const t0 = now - HOUR;
    const history = card.history;
    // the value before the window holds at its start; the last value holds until now
    const before = history.filter((p) => p[0] < t0).pop();
    const inside = history.filter((p) => p[0] >= t0);
    const series = CLASSES.map((c, i) => {
      const points = inside.map((p) => [p[0], p[i + 1]]);
      if (before) points.unshift([t0, before[i + 1]]);
      if (points.length) points.push([now, points[points.length - 1][1]]);
      return { cls: c, points };
    });
    const node = card.refs.chart;
    drawSeries(card, node, series, t0, now, timeTicks(t0, now, 15 * 60000, hm, node.clientWidth || 320));
  }

  // --- 12 months of daily maxima and the forecast (fetched for the open page: they change once a day) ----
  const YEAR_REFRESH = 5 * 60 * 1000;
  async function loadYear(id, card) {
    card.loaded = Date.now();
    const from = new Date(Date.now() - 365 * 86400000).toISOString().slice(0, 10);
    const base = "/api/v1/subscriptions/" + encodeURIComponent(id);
    try {
      const json = (path) => fetch(base + path, { headers: authHeaders() }).then((r) => (r.ok ? r.json() : null));
      // the dormant report is admin-only: a viewer's card (no admin-only report in its stream) never
      // asks, so its console stays clean; a refused answer (the token's role changed) hides the line
      const admin = !!card.data && "external_domains" in card.data;
      const [hist, sub, sources, idle] = await Promise.all([
        json("/history?from=" + from), json(""), json("/sources"), admin ? json("/dormant") : null,
      ]);
      if (hist) card.year = hist.entries || [];
      if (sub) card.forecast = sub.forecast || null;
      if (sources) markSilent(card, sources);
      markDormant(card, idle);
    } catch (err) { return; }
    drawYear(card);
  }
  // a dead identity feed makes counts quietly too low: name each silent user provider on the card
  function markSilent(card, sources) {
    const silent = (sources.providers || []).filter((p) => p.silent);
    card.refs.silent.hidden = silent.length === 0;
    card.refs.silent.textContent = silent.length === 0 ? "" : "Silent sources: " +
      silent.map((p) => `${p.provider} (no event for ${p.silent_hours} h, since ${p.last_event.replace("T", " ").slice(0, 16)} UTC)`).join(", ");
  }
  // seats held by people who stopped logging in: what deactivating them would free (admins only)
  function markDormant(card, report) {
    const freed = (report && report.freed) || {};
    const total = CLASSES.reduce((n, c) => n + (freed[c] || 0), 0);
    const line = card.refs.dormant;
    line.hidden = total === 0;
    if (total === 0) { line.replaceChildren(); return; }
    const link = el("a", "the list (CSV)", "dormant-list");
    link.href = "#";
    link.addEventListener("click", (e) => { e.preventDefault(); downloadDormant(card.id); });
    line.replaceChildren(`Dormant: ${fmt(freed.internal || 0)} internal, ${fmt(freed.external || 0)} external ` +
      `seats reclaimable (not logged in for ${report.days} days): `, link);
  }
  // a plain link cannot carry the token (it is sent as a header, never in the URL): fetch, then save
  async function downloadDormant(id) {
    const response = await fetch("/api/v1/subscriptions/" + encodeURIComponent(id) + "/dormant?format=csv",
      { headers: authHeaders() });
    if (!response.ok) return;
    const url = URL.createObjectURL(await response.blob());
    const a = el("a");
    a.href = url;
    a.download = id + "-dormant.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
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
  function monthTicks(t0, t1, width) {
    const ticks = [];
    const d = new Date(t0);
    let m = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
    const every = Math.max(1, Math.ceil(12 / Math.max(2, Math.floor(width / 60))));
    for (let i = 0; m.getTime() <= t1; i++, m = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))) {
      if (i % every) continue;
      const label = m.getUTCMonth() === 0 ? String(m.getUTCFullYear())
        : m.toLocaleDateString([], { month: "short", timeZone: "UTC" });
      ticks.push([m.getTime(), label]);
    }
    return ticks;
  }
  function drawYear(card) {
    const now = Date.now();
    const t0 = now - 365 * DAY;
    const day = (period) => Math.min(now, Date.parse(period + "T12:00:00Z"));
    const series = CLASSES.map((c) => ({ cls: c, points: card.year.map((d) => [day(d.period), d[c].max]) }));
    const node = card.refs.year;
    drawSeries(card, node, series, t0, now, monthTicks(t0, now, node.clientWidth || 320));
    card.refs.forecast.textContent = forecastText(card.forecast);
  }

  // --- the subscription's page (#/s/<id>) -----------------------------------------------------------
  function routeId() {
    const m = location.hash.match(/^#\/s\/(.+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function openDetail(id) { location.hash = "#/s/" + encodeURIComponent(id); }

  function route() {
    const id = routeId();
    const detail = id !== null;
    $("detail-view").hidden = !detail;
    $("fleet-view").hidden = detail;
    for (const [other, card] of cards) {
      if (other !== id) { card.root.remove(); cards.delete(other); }
    }
    if (!detail) {
      document.title = "End users: live counts";
      render();
      if (view.focus && rowCache.has(view.focus)) focusRow(rowCache.get(view.focus).tr);
      return;
    }
    document.title = `${id}: end users`;
    view.focus = id;
    $("fleet-rows").replaceChildren();   // not kept up to date behind the page: drawn again on return
    renderDetail();
    const card = cards.get(id);
    if (card) card.refs.name.focus();
  }

  function renderDetail() {
    const id = routeId();
    if (id === null) return;
    const entry = subs.get(id);
    const empty = $("empty");
    empty.hidden = !!entry;
    if (!entry) {
      empty.textContent = loaded ? `No subscription “${id}” in this token's scope.` : "Waiting for data…";
      return;
    }
    let card = cards.get(id);
    if (!card) {
      card = createCard(id);
      cards.set(id, card);
      $("cards").replaceChildren(card.root);
    }
    card.history = entry.history || [];
    updateCard(card, entry);
    if (Date.now() - card.loaded > YEAR_REFRESH) loadYear(id, card);
  }

  // --- messages --------------------------------------------------------------------------------
  function onSnapshot(message) {
    subs.clear();
    rowCache.clear();
    for (const [id, entry] of Object.entries(message.subscriptions || {})) {
      subs.set(id, entry);
      versions.set(id, (versions.get(id) || 0) + 1);
    }
    loaded = true;
    performance.mark("snapshot");   // the browser test measures from here to the table
    updated(message.time);
    scheduleRender();
  }

  function onChange(message) {
    const spoken = [];
    for (const [id, change] of Object.entries(message.subscriptions || {})) {
      const entry = subs.get(id);
      if (!entry) { subs.set(id, change); versions.set(id, (versions.get(id) || 0) + 1); continue; }
      if (change.levels) spoken.push(...levelChanges(id, entry.levels || {}, change.levels));
      for (const [key, value] of Object.entries(change)) {
        if (key === "point") {
          const history = entry.history || (entry.history = []);
          history.push(value);
          while (history.length && history[0][0] < value[0] - HOUR) history.shift();
        } else {
          entry[key] = value;
        }
      }
      versions.set(id, versions.get(id) + 1);
    }
    for (const id of message.removed || []) { subs.delete(id); rowCache.delete(id); }
    if (spoken.length) announce(spoken);
    updated(message.time);
    scheduleRender();
  }

  // level changes are read out by screen readers (an ARIA live region), a few at a time
  function levelChanges(id, before, after) {
    const out = [];
    for (const cls of CLASSES) {
      const a = before[cls] || 0, b = after[cls] || 0;
      if (a !== b) out.push(`${id}: ${cls} ${b > a ? "up" : "down"} to level ${b}%`);
    }
    return out;
  }
  function announce(lines) {
    const text = lines.slice(0, 5).join(". ") + (lines.length > 5 ? `. And ${lines.length - 5} more level changes.` : ".");
    $("announce").textContent = text;
  }

  function updated(time) {
    const when = new Date(time || Date.now());
    $("updated").textContent = `${fmt(subs.size)} subscription${subs.size === 1 ? "" : "s"} · updated ${when.toLocaleTimeString([], { hour12: false })}`;
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
    lastEventId = "";
    loaded = false;
    subs.clear();
    rowCache.clear();
    for (const card of cards.values()) card.root.remove();
    cards.clear();
    render();
    $("fleet-view").hidden = true;
    $("detail-view").hidden = true;
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
    route();
    connect();
  }

  function signOut() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (err) { /* nothing stored */ }
    showLogin("");
  }

  // --- stream (Server-Sent Events over fetch) -------------------------------------------------------
  function dispatch(block) {
    let name = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      else if (line.startsWith("id:")) id = line.slice(3).trim();
    }
    lastMessage = Date.now();   // a heartbeat (a comment) counts: the connection is alive
    if (data.length === 0) return;
    if (name === "snapshot" || name === "change") {
      setStatus("live", "live");
      showProblem("");
      try {
        const message = JSON.parse(data.join("\n"));
        if (name === "snapshot") onSnapshot(message); else onChange(message);
        if (id !== null) lastEventId = id;
      } catch (err) { console.error(err); }
    } else if (name === "problem") {
      let error = "store unavailable";
      try { error = JSON.parse(data.join("\n")).error; } catch (err) { /* keep the generic text */ }
      setStatus(error ? "down" : "live", error ? "store unavailable" : "live");
      showProblem(error);
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
    const headers = authHeaders();
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;   // resume: only what was missed
    let response;
    try {
      response = await fetch("/api/v1/stream", { headers, cache: "no-store", signal: controller.signal });
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
    lastMessage = Date.now();
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
  setInterval(() => { for (const card of cards.values()) drawChart(card); }, 30000);  // the hour moves on
  window.addEventListener("resize", () => { for (const card of cards.values()) { drawChart(card); drawYear(card); } });
  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", () => {
    $("filter").addEventListener("input", (ev) => { view.text = ev.target.value.trim().toLowerCase(); view.page = 0; render(); });
    for (const th of document.querySelectorAll("#fleet th")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
    $("page-prev").addEventListener("click", () => { view.page = Math.max(0, view.page - 1); render(); });
    $("page-next").addEventListener("click", () => { view.page += 1; render(); });
    const rows = $("fleet-rows");
    rows.addEventListener("keydown", onRowKey);
    rows.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr");
      if (!tr || ev.target.closest("a")) return;   // the name's link opens it by itself
      openDetail(tr.dataset.subscription);
    });
    rows.addEventListener("focusin", (ev) => { const tr = ev.target.closest("tr"); if (tr) view.focus = tr.dataset.subscription; });
    $("login").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    route();
    connect();
  });
})();
