// The dashboard page: reads /api/lag, /api/stores and /api/history and draws them. No
// framework, no CDN (the machines have no internet); the chart is inline SVG.

const refreshMs = Math.max(1, Number(document.body.dataset.refresh) || 15) * 1000;
const COLORS = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#2c7a7b', '#975a16'];
let chartMetric = 'lagSeconds';
let lastHistory = null;
let prefix = '';
// The words of FLUXION_LOCALE, from /static/messages.js ({0}: a parameter).
const MSG = window.FLUXION_MESSAGES || {};
function msg(key, arg) {
  const text = MSG[key] || key;
  return arg === undefined ? text : text.replace('{0}', String(arg));
}
const LOCALE = document.documentElement.lang || undefined;

/** Names without FLUXION_TOPIC_PREFIX (shown once in the header); data attributes keep full names. */
function short(name) {
  return prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? '' : String(c)));
  return node;
}

function badge(status) {
  return el('span', { class: `badge ${status}`, 'data-testid': 'status' }, status);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86400)} d`;
}

function ago(iso) {
  if (!iso) return el('span', { class: 'muted' }, msg('never'));
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  return el('time', { datetime: iso, title: new Date(iso).toLocaleString(LOCALE) }, msg('ago', duration(Math.max(0, seconds))));
}

function secondsCell(value) {
  // The figure the API gives, rounded to whole seconds; the tooltip says it in words.
  return el(
    'td',
    { class: 'num', 'data-testid': 'lag-seconds', title: duration(value) },
    value === null ? '?' : String(Math.round(value)),
  );
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderLag(lag) {
  prefix = lag.topicPrefix || '';
  document.getElementById('prefix').textContent = prefix ? msg('topicPrefix', prefix) : '';
  document.getElementById('sampled-at').textContent = new Date(lag.sampledAt).toLocaleTimeString(LOCALE);
  document.getElementById('sampled-at').setAttribute('datetime', lag.sampledAt);
  fill(
    document.querySelector('#groups tbody'),
    lag.groups.map((g) =>
      el(
        'tr',
        { 'data-group': g.group, 'data-testid': 'group-row' },
        el('td', {}, badge(g.status)),
        el('td', { 'data-testid': 'group', title: g.group }, short(g.group)),
        el('td', { class: 'muted' }, g.process),
        el('td', { class: 'num', title: g.state }, String(g.members)),
        el('td', { class: 'num', 'data-testid': 'lag-messages' }, String(g.lagMessages)),
        secondsCell(g.lagSeconds),
        el('td', {}, g.lagMessages > 0 ? duration(g.lagSeconds) : '–'),
      ),
    ),
  );
  const rows = [];
  for (const g of lag.groups) {
    for (const p of g.partitions) {
      rows.push(
        el(
          'tr',
          {
            class: p.lagMessages === 0 && p.status === 'OK' ? 'idle' : null,
            'data-group': p.group,
            'data-topic': p.topic,
            'data-partition': String(p.partition),
            'data-testid': 'partition-row',
          },
          el('td', {}, badge(p.status)),
          el('td', { title: p.group }, short(p.group)),
          el('td', { title: p.topic }, short(p.topic)),
          el('td', { class: 'num' }, String(p.partition)),
          el('td', { class: 'num', 'data-testid': 'committed' }, p.committed === null ? msg('none') : p.committed),
          el('td', { class: 'num', 'data-testid': 'end' }, p.end),
          el('td', { class: 'num', 'data-testid': 'lag-messages' }, String(p.lagMessages)),
          secondsCell(p.lagSeconds),
          el('td', { class: 'muted' }, p.reason),
        ),
      );
    }
  }
  fill(document.querySelector('#partitions tbody'), rows);
  document.getElementById('idle-count').textContent = String(rows.filter((r) => r.classList.contains('idle')).length);
}

function renderStores(data) {
  document.getElementById('lookback').textContent = msg('lookback', data.lookbackHours);
  const polls = (s, job) => {
    const c = s.polls[job];
    return c ? `${c.missed}/${c.expected}` : '–';
  };
  fill(
    document.querySelector('#stores tbody'),
    data.stores.map((s) => {
      const applied = s.lastApplied
        ? el(
            'span',
            {},
            ago(s.lastApplied.takenAt),
            s.lastExtractionApplied === false ? el('span', { class: 'muted' }, msg('notAppliedYet')) : '',
          )
        : el('span', { class: 'muted' }, msg('none'));
      return el(
        'tr',
        { 'data-store': s.id, 'data-testid': 'store-row' },
        el('td', {}, badge(s.status)),
        el('td', { title: s.nombre }, s.id),
        el('td', {}, s.pos.toUpperCase()),
        el('td', {}, ago(s.lastSuccess.INVENTARIO?.startedAt)),
        el('td', {}, s.pos === 'klk' ? ago(s.lastSuccess.VENTAS?.startedAt) : '–'),
        el('td', {}, applied),
        el(
          'td',
          { class: 'num', 'data-testid': 'missed-polls' },
          s.pos === 'klk' ? `${polls(s, 'INVENTARIO')} · ${polls(s, 'VENTAS')}` : polls(s, 'INVENTARIO'),
        ),
        el('td', { class: 'num', 'data-testid': 'quarantined' }, String(s.quarantined)),
        el('td', { class: 'num', 'data-testid': 'stale' }, String(s.stale || 0)),
        el('td', { class: 'num' }, String(s.openAlerts)),
        el('td', { class: 'muted' }, s.reasons.join('; ')),
      );
    }),
  );
}

function renderErrors(errors) {
  const box = document.getElementById('errors');
  box.hidden = errors.length === 0;
  box.replaceChildren(...errors.map((e) => el('div', {}, `${e.source}: ${e.message}`)));
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function renderChart(history) {
  lastHistory = history;
  const box = document.getElementById('chart');
  const W = 1000,
    H = 240,
    L = 60,
    R = 200,
    T = 12,
    B = 28;
  const points = history.points;
  const groups = [...new Set(points.flatMap((p) => Object.keys(p.groups)))];
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `lag history (${chartMetric})` });
  if (points.length < 2) {
    root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#718096', 'font-size': 14 }, msg('collecting')));
    box.replaceChildren(root);
    return;
  }
  const t0 = points[0].at,
    t1 = points[points.length - 1].at;
  const values = points
    .flatMap((p) => groups.map((g) => (p.groups[g] ? p.groups[g][chartMetric] : null)))
    .filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...values);
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e2e8f0' }));
    root.append(
      svg(
        'text',
        { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#4a5568' },
        chartMetric === 'lagSeconds' ? duration(v) : Math.round(v),
      ),
    );
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    root.append(
      svg(
        'text',
        { x: x(t), y: H - 8, 'text-anchor': 'middle', 'font-size': 11, fill: '#4a5568' },
        new Date(t).toLocaleTimeString(LOCALE, { hour: '2-digit', minute: '2-digit' }),
      ),
    );
  }
  groups.forEach((g, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = points
      .filter((p) => p.groups[g] && p.groups[g][chartMetric] !== null)
      .map((p) => `${x(p.at).toFixed(1)},${y(p.groups[g][chartMetric]).toFixed(1)}`);
    if (pts.length)
      root.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2, 'data-group': g }));
    root.append(svg('rect', { x: W - R + 10, y: T + i * 18, width: 10, height: 10, fill: color }));
    root.append(svg('text', { x: W - R + 26, y: T + i * 18 + 9, 'font-size': 11, fill: '#2d3748' }, short(g)));
  });
  box.replaceChildren(root);
}

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

async function refresh() {
  try {
    const [lag, stores, history] = await Promise.all([getJson('/api/lag'), getJson('/api/stores'), getJson('/api/history')]);
    renderErrors(lag.errors);
    renderLag(lag);
    renderStores(stores);
    renderChart(history);
    document.body.dataset.loaded = lag.sampledAt;
  } catch (err) {
    renderErrors([{ source: 'dashboard', message: String(err?.message ? err.message : err) }]);
  } finally {
    setTimeout(refresh, refreshMs);
  }
}

document.getElementById('show-all').addEventListener('change', (e) => {
  document.getElementById('partitions').classList.toggle('compact', !e.target.checked);
});
for (const button of document.querySelectorAll('.chart-controls button')) {
  button.addEventListener('click', () => {
    chartMetric = button.dataset.metric;
    for (const b of document.querySelectorAll('.chart-controls button')) b.classList.toggle('on', b === button);
    if (lastHistory) renderChart(lastHistory);
  });
}
refresh();
