// The nixdock dashboard: one WebSocket to the daemon (protocol: docs/protocol.md), no framework.
// State lives in `images` (one entry per image); every message updates it and re-renders the
// parts of the page that changed.
'use strict';

const PROTOCOL = 1;
const TOKEN_KEY = 'nixdock.token';
const images = new Map(); // name → { snap, history, liveLayers, queued, dom, chart, chartKey }
let socket;
let retryMs = 500;
let refusals = 0;

// ─── token: from #token=… (printed by `nixdock watch`), hidden from the address bar and kept in
// localStorage (per origin, so per daemon port): the token stays the same across daemon restarts,
// so a reload, a new tab without #token=… and a restarted daemon all work without the URL again.
function token() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    localStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname);
  }
  return localStorage.getItem(TOKEN_KEY);
}

// ─── formatting
const $ = (root, sel) => root.querySelector(sel);
function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
function bytes(n) {
  // Below 1 KiB (and Chart.js' fractional axis ticks, which gave "819 undefined"): plain bytes.
  if (!n || n < 1024) return `${Math.round(n || 0)} B`;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const i = Math.min(Math.floor(Math.log(n) / Math.log(1024)), units.length - 1);
  const v = n / 1024 ** i;
  return `${v.toFixed(i === 0 || v >= 10 ? 0 : 1)} ${units[i]}`;
}
function ms(n) {
  if (n == null) return '—';
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
}
function ago(t) {
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(t).toLocaleString();
}
const short = (d) => (d ? d.replace(/^sha256:/, '').slice(0, 12) : '');
const pathName = (p) => p.replace(/^.*\/[0-9a-z]{32}-/, '');

function errorHtml(error) {
  return `<strong>${esc(error.code)}</strong> <pre class="message">${esc(error.message)}</pre>`
    + problemHtml(error)
    + (error.problems || []).slice(1).map((p) => `<div class="problem"><pre class="message">${esc(p.message)}</pre>${problemHtml(p)}</div>`).join('');
}

/** Where a problem is (file:line:column → field) and its found / expected / hint. */
function problemHtml(problem) {
  const loc = problem.location || {};
  const where = [loc.file, loc.line != null ? loc.line : null, loc.line != null && loc.column != null ? loc.column : null].filter((x) => x != null).join(':');
  const rows = [['found', problem.found], ['expected', problem.expected], ['hint', problem.hint]].filter(([, v]) => v != null);
  return (where || loc.field ? `<div class="where">${esc(where)}${loc.field ? ` → ${esc(loc.field)}` : ''}</div>` : '')
    + (rows.length ? `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` : '');
}

// ─── activity log
function log(text, bad = false) {
  const list = document.getElementById('log');
  const li = document.createElement('li');
  li.innerHTML = `<time>${new Date().toLocaleTimeString()}</time><span class="${bad ? 'bad' : ''}">${esc(text)}</span>`;
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

function describe(e) {
  switch (e.type) {
    case 'build:queued': return `${e.image}: queued (${e.reason})`;
    case 'build:started': return `${e.image}: build started`;
    case 'layer:built': return `${e.image}: layer ${e.index + 1} built, ${bytes(e.size)} in ${ms(e.ms)}`;
    case 'layer:reused': return `${e.image}: layer ${e.index + 1} reused, ${bytes(e.size)}`;
    case 'output:written': return `${e.image}: wrote ${e.output.format} ${e.output.path ?? e.output.ref ?? ''}`.trimEnd();
    case 'build:superseded': return `${e.image}: superseded by ${e.by}`;
    case 'build:failed': return `${e.image}: failed — ${e.error.message}`;
    case 'build:succeeded': return `${e.image}:${e.tag} built in ${ms(e.ms)} (${e.layersBuilt} built, ${e.layersReused} reused)`;
    default: return null;
  }
}

// ─── per-image cards
function entry(name) {
  let img = images.get(name);
  if (!img) {
    const node = document.getElementById('image-card').content.firstElementChild.cloneNode(true);
    node.dataset.image = name;
    $(node, '.rebuild').addEventListener('click', () => send({ type: 'rebuild', image: name }));
    img = { snap: { name, state: 'idle' }, history: [], liveLayers: null, queued: false, dom: node, chart: null, chartKey: '' };
    images.set(name, img);
    document.getElementById('images').append(node);
  }
  return img;
}

function layersOf(img) {
  if (img.liveLayers) return { layers: img.liveLayers, caption: 'building…' };
  const last = img.snap.lastBuild && img.snap.lastBuild.layers && img.snap.lastBuild.layers.length ? img.snap.lastBuild : img.history.find((b) => b.layers && b.layers.length);
  return last ? { layers: last.layers, caption: `from build #${last.id}` } : { layers: [], caption: 'no build yet' };
}

function render(img) {
  const { dom, snap } = img;
  const state = snap.state === 'running' && img.queued ? 'running + queued' : snap.state;
  $(dom, '.name').textContent = snap.name;
  const badge = $(dom, '.state');
  badge.textContent = state;
  badge.className = `badge state ${snap.state}`;
  const last = snap.lastBuild;
  $(dom, '.tag').textContent = last && last.tag ? `:${last.tag}` : '';
  $(dom, '.source').textContent = snap.source ? `${snap.source.file}${snap.source.field ? ` → ${snap.source.field}` : ''}` : '';
  renderProgress(img);
  const errBox = $(dom, '.image-error');
  errBox.hidden = !snap.error;
  if (snap.error) errBox.innerHTML = errorHtml(snap.error);
  $(dom, '.summary').innerHTML = last ? [
    ['status', `<span class="badge ${esc(last.status)}">${esc(last.status)}</span>`],
    ['duration', esc(ms(last.finishedAt ? last.finishedAt - last.startedAt : null))],
    ['layers built / reused', `${last.layersBuilt} / ${last.layersReused}`],
    ['written', esc(bytes(last.bytesWritten))],
    ['config', `<span class="mono">${esc(short(last.configDigest))}</span>`],
    ['finished', esc(last.finishedAt ? ago(last.finishedAt) : '—')],
  ].map(([k, v]) => `<div class="stat"><b>${v}</b><span>${k}</span></div>`).join('') : '<span class="muted">Not built yet.</span>';
  renderLayers(img);
  renderHistory(img);
}

function renderProgress(img) {
  const box = $(img.dom, '.progress');
  const cur = img.snap.current;
  box.hidden = img.snap.state === 'idle' || !cur;
  if (box.hidden) return;
  const layerPart = cur.layersTotal ? cur.layersDone / cur.layersTotal : 0;
  const bytePart = cur.bytesTotal ? Math.min(cur.bytesDone / cur.bytesTotal, 1) : 0;
  $(box, '.fill').style.width = `${Math.round(Math.max(layerPart, bytePart) * 100)}%`;
  // Until the plan is known the build is in Nix (realising installables): say so, with its latest line.
  if (!cur.layersTotal) {
    $(box, '.progress-text').textContent = `running Nix${img.nixStep ? `: ${img.nixStep}` : '…'}${cur.reason ? ` · ${cur.reason}` : ''}`;
    return;
  }
  $(box, '.progress-text').textContent = `${cur.layersDone}${cur.layersTotal ? ` of ${cur.layersTotal}` : ''} layers · ${bytes(cur.bytesDone)}${cur.bytesTotal ? ` of ${bytes(cur.bytesTotal)}` : ''}${cur.reason ? ` · ${cur.reason}` : ''}`;
}

const LOG_LINES = 500;

/** "building hello-app" from Nix's "building '/nix/store/…-hello-app.drv'..." line. */
function nixStep(line) {
  const m = /^(building|copying path|fetching|downloading) '([^']+)'/.exec(line);
  return m ? `${m[1]} ${pathName(m[2]).replace(/\.drv$/, '')}` : '';
}

/** The log panel: the current build's Nix log, or the last build's when it failed. */
function renderLog(img) {
  const box = $(img.dom, '.build-log');
  const lines = img.logLines || [];
  box.hidden = lines.length === 0;
  $(box, '.log-count').textContent = `${lines.length} line${lines.length === 1 ? '' : 's'}`;
  const pre = $(box, 'pre');
  pre.textContent = lines.join('\n');
  pre.scrollTop = pre.scrollHeight;
}

/** The `run` container panel: its state and its output (stderr lines marked). */
function renderContainer(img) {
  const box = $(img.dom, '.container-log');
  const c = img.container;
  box.hidden = !c;
  if (!c) return;
  const exit = c.state === 'exited' && c.exitCode != null ? ` (exit code ${c.exitCode})` : '';
  $(box, '.container-state').textContent = `${c.name} ${c.state}${exit} · ${c.ref}`;
  $(box, '.container-count').textContent = `${c.log.length} line${c.log.length === 1 ? '' : 's'}`;
  const pre = $(box, 'pre');
  pre.innerHTML = c.log.map((l) => (l.stream === 'stderr' ? `<span class="stderr">${esc(l.line)}</span>` : esc(l.line))).join('\n');
  pre.scrollTop = pre.scrollHeight;
}

function renderLayers(img) {
  const { layers, caption } = layersOf(img);
  $(img.dom, '.layers-caption').textContent = caption;
  const key = JSON.stringify(layers.map((l) => [l.diffId, l.built]));
  if (key === img.chartKey) return;
  const fresh = img.chartKey !== '';
  img.chartKey = key;
  $(img.dom, '.layers tbody').innerHTML = layers.map((l) => {
    const names = l.storePaths.length ? l.storePaths.map((p) => `<span title="${esc(p)}">${esc(pathName(p))}</span>`).join(', ') : '<span class="muted">customisation layer</span>';
    return `<tr class="${fresh && l.built ? 'fresh' : ''}"><td class="num">${l.index + 1}</td><td class="size">${esc(bytes(l.size))}</td>`
      + `<td><span class="badge ${l.built ? 'built' : 'reused'}">${l.built ? 'built' : 'reused'}</span></td><td class="paths">${names}</td></tr>`;
  }).join('');
  drawChart(img, layers);
}

function drawChart(img, layers) {
  if (!window.Chart) return;
  const css = getComputedStyle(document.documentElement);
  const data = {
    labels: layers.map((l) => `#${l.index + 1} ${l.storePaths.length ? pathName(l.storePaths[0]) + (l.storePaths.length > 1 ? ` +${l.storePaths.length - 1}` : '') : 'customisation'}`),
    datasets: [{
      label: 'layer size',
      data: layers.map((l) => l.size),
      backgroundColor: layers.map((l) => css.getPropertyValue(l.built ? '--built' : '--reused').trim()),
      borderRadius: 3,
      minBarLength: 4, // tiny layers next to a big one must still show
    }],
  };
  if (img.chart) {
    img.chart.data = data;
    img.chart.update('none');
    return;
  }
  img.chart = new window.Chart($(img.dom, '.chart'), {
    type: 'bar',
    data,
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => ` ${bytes(c.raw)}` } } },
      scales: {
        x: { ticks: { color: css.getPropertyValue('--muted').trim(), maxRotation: 40, autoSkip: true, font: { size: 11 } }, grid: { display: false } },
        y: { ticks: { color: css.getPropertyValue('--muted').trim(), callback: (v) => bytes(v) }, grid: { color: css.getPropertyValue('--line').trim() } },
      },
    },
  });
}

function renderHistory(img) {
  $(img.dom, '.history').innerHTML = img.history.slice(0, 12).map((b) => {
    const took = b.finishedAt ? ms(b.finishedAt - b.startedAt) : 'running';
    const detail = b.error ? esc(b.error) : `${b.layersBuilt} built · ${b.layersReused} reused · ${esc(bytes(b.bytesWritten))} · ${esc(b.reason || '')}`;
    return `<li><span class="badge ${esc(b.status)}">${esc(b.status)}</span><span>${esc(took)}</span><span class="when">${esc(ago(b.startedAt))}</span><span class="detail">${detail}</span></li>`;
  }).join('') || '<li class="muted">No builds recorded yet.</li>';
}

// ─── protocol
function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function onEvent(e) {
  const img = entry(e.image);
  const cur = img.snap.current;
  switch (e.type) {
    case 'build:queued':
      if (img.snap.state === 'idle') img.snap.state = 'queued'; else img.queued = true;
      break;
    case 'build:started':
      img.snap.state = 'running';
      img.queued = false;
      img.snap.current = { buildId: e.buildId, startedAt: e.time, layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0, reason: '' };
      img.liveLayers = [];
      img.logLines = [];
      img.nixStep = '';
      renderLog(img);
      break;
    case 'log':
      img.logLines = [...(img.logLines || []), e.line].slice(-LOG_LINES);
      img.nixStep = nixStep(e.line) || img.nixStep;
      renderLog(img);
      renderProgress(img);
      return;
    case 'plan:done':
      if (cur) Object.assign(cur, { layersTotal: e.layers, bytesTotal: e.bytes });
      break;
    case 'progress':
      if (cur) Object.assign(cur, { bytesDone: e.bytesDone, bytesTotal: Math.max(cur.bytesTotal, e.bytesTotal) });
      renderProgress(img);
      return;
    case 'layer:built':
    case 'layer:reused':
      if (cur) cur.layersDone += 1;
      if (img.liveLayers) img.liveLayers.push({ index: e.index, diffId: e.diffId, size: e.size, built: e.type === 'layer:built', storePaths: e.storePaths });
      break;
    case 'build:succeeded':
    case 'build:failed':
    case 'build:superseded':
      img.snap.state = img.queued ? 'queued' : 'idle';
      img.snap.current = undefined;
      if (e.type === 'build:failed') img.snap.error = e.error;
      if (e.type === 'build:succeeded') img.snap.error = undefined;
      if (e.type !== 'build:superseded') img.liveLayers = null;
      send({ type: 'history', image: e.image, limit: 20 });
      break;
  }
  render(img);
}

function onMessage(msg) {
  switch (msg.type) {
    case 'hello':
      if (msg.protocol !== PROTOCOL) log(`daemon speaks protocol ${msg.protocol}, this page ${PROTOCOL}`, true);
      document.getElementById('version').textContent = `v${msg.version}`;
      document.getElementById('project').textContent = msg.configFile;
      document.getElementById('project').title = msg.root;
      break;
    case 'snapshot': {
      const names = new Set(msg.images.map((s) => s.name));
      for (const [name, img] of images) if (!names.has(name)) { img.chart && img.chart.destroy(); img.dom.remove(); images.delete(name); }
      for (const snap of msg.images) {
        const img = entry(snap.name);
        img.snap = snap;
        if (snap.state === 'idle') img.liveLayers = null;
        img.container = snap.container;
        renderContainer(img);
        render(img);
      }
      document.getElementById('empty').hidden = images.size > 0;
      if (!images.size) document.getElementById('empty').textContent = 'No images are configured.';
      showConfigError(msg.configError);
      send({ type: 'history', limit: 100 });
      break;
    }
    case 'history':
      for (const img of images.values()) {
        if (msg.image && msg.image !== img.snap.name) continue;
        img.history = msg.builds.filter((b) => b.image === img.snap.name);
        const last = img.history.find((b) => b.status !== 'running');
        if (last) img.snap.lastBuild = last;
        render(img);
      }
      break;
    case 'event': {
      onEvent(msg.event);
      const line = describe(msg.event);
      if (line) log(line, msg.event.type === 'build:failed');
      break;
    }
    case 'change':
      log(`changed: ${msg.files.map((f) => f.split('/').pop()).join(', ')}`);
      break;
    case 'config-error':
      showConfigError(msg.error);
      log(`config error: ${msg.error.message}`, true);
      break;
    case 'config-reloaded':
      showConfigError(undefined);
      log('config reloaded');
      break;
    case 'container': {
      const img = images.get(msg.image);
      if (!img) break;
      const same = img.container && img.container.name === msg.container.name && msg.container.state !== 'started';
      img.container = { ...msg.container, log: same ? img.container.log : [] };
      renderContainer(img);
      log(`${msg.image}: container ${msg.container.state}${msg.container.state === 'started' ? ` from ${msg.container.ref}` : ''}`, msg.container.state === 'failed');
      break;
    }
    case 'container-log': {
      const img = images.get(msg.image);
      if (!img || !img.container) break;
      img.container.log = [...img.container.log, { stream: msg.stream, line: msg.line, time: msg.time }].slice(-LOG_LINES);
      renderContainer(img);
      break;
    }
    case 'error':
      log(`daemon: ${msg.error.message}`, true);
      break;
  }
}

function showConfigError(error) {
  const box = document.getElementById('config-error');
  box.hidden = !error;
  if (error) box.innerHTML = `<div>The config failed to load; the daemon keeps building with the last good one.</div>${errorHtml(error)}`;
}

function setConn(state, text) {
  const el = document.getElementById('conn');
  el.dataset.state = state;
  el.textContent = text;
}

function connect() {
  const t = token();
  if (!t) {
    setConn('closed', 'no token');
    document.getElementById('empty').textContent = 'Open the dashboard with the URL printed by `nixdock watch` (it ends in #token=…).';
    return;
  }
  socket = new WebSocket(`ws://${location.host}/ws`, ['nixdock.v1', `nixdock.token.${t}`]);
  let opened = false;
  socket.addEventListener('open', () => { opened = true; refusals = 0; retryMs = 500; setConn('open', 'live'); });
  socket.addEventListener('message', (m) => {
    try { onMessage(JSON.parse(m.data)); } catch (err) { console.error('bad message', err); }
  });
  socket.addEventListener('close', () => {
    // Several refusals in a row while the port answers: most likely a rotated token (`watch --rotate-token`).
    if (!opened) refusals++;
    setConn('closed', refusals >= 3 ? 'reconnecting… (if the daemon restarted with a new token, open the URL `nixdock watch` printed)' : 'reconnecting…');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  });
}

setInterval(() => { for (const img of images.values()) renderHistory(img); }, 30000); // keep "n min ago" fresh
connect();
