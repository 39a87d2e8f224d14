// The dashboard (/admin/dashboard): GET /admin/stats, fetched again whenever the feed
// reports a change (and every few seconds), drawn with Chart.js (Debian's libjs-chart.js,
// compiled into slotd). Nothing reloads: tiles change their text, charts their data, and
// every chart has a table with the same numbers for screen readers and tests.
import '../vendor/chart.min.js';
import { api, describeError } from './http.js';
import { LiveFeed } from './feed.js';
import { h, replaceChildren, showFeedState } from './dom.js';
import { loadDirectory } from './directory.js';
import { signedIn } from './admin-auth.js';

const Chart = globalThis.Chart;
const main = document.getElementById('main');
const POLL_MS = 5000;
const VITALS_KEPT = 90;
const COLOURS = { held: '#d99100', confirmed: '#17703a', failed: '#b3261e', cancelled: '#8a96a3', pending: '#d99100', line1: '#0a5bc4', line2: '#7a3fb8', line3: '#b24a0b' };

let directory = null;
let stats = null;
const vitals = []; // {at, batch, syncMs, queue}
const activity = []; // newest first: {at, text}
let charts = {};
let tiles = {};
let tables = {};
let activityRows = [];
let fetching = false;
let again = false;
let lastFetch = 0;
let refreshTimer = null;
let feeds = [];

start();

async function start() {
  await signedIn(main);
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = '#4f5b67';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  try {
    directory = await loadDirectory({ admin: true });
  } catch (error) {
    replaceChildren(main, h('div', { class: 'alert alert-error', role: 'alert' }, describeError(error)));
    return;
  }
  layout();
  drawActivity();
  await refresh();
  subscribe();
  setInterval(refresh, POLL_MS);
}

// ---- layout: fixed-size tiles, charts and rows, so live numbers never move anything ------------

function tile(key, label) {
  const value = h('div', { class: 'value', id: `kpi-${key}` }, '—');
  const sub = h('div', { class: 'sub', id: `kpi-${key}-sub` }, '\u00a0');
  tiles[key] = { value, sub };
  return h('div', { class: 'kpi', role: 'group', 'aria-labelledby': `kpi-${key}-label` },
    h('div', { class: 'label', id: `kpi-${key}-label` }, label), value, sub);
}

function chartCard(key, title, subtitle, columns) {
  const canvas = h('canvas', { id: `chart-${key}`, role: 'img', 'aria-label': title });
  const note = h('p', { class: 'muted', id: `chart-${key}-note` }, subtitle);
  const body = h('tbody');
  tables[key] = body;
  return h('section', { class: 'card chart-card', 'aria-labelledby': `chart-${key}-title` },
    h('h2', { id: `chart-${key}-title` }, title), note,
    h('div', { class: 'chart-box' }, canvas),
    h('details', {}, h('summary', {}, 'Show as table'),
      h('div', { class: 'table-wrap', style: 'margin-top:0.5rem;max-height:16rem;overflow:auto' },
        h('table', { id: `table-${key}` }, h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))), body))));
}

function layout() {
  document.title = 'Dashboard · slotd admin';
  activityRows = Array.from({ length: 8 }, () => h('li', {}, h('span', { class: 'when' }), h('span', { class: 'what' })));
  replaceChildren(main,
    h('div', { class: 'page-head row', style: 'justify-content:space-between;align-items:flex-end' },
      h('div', {}, h('h1', {}, 'Dashboard'), h('p', { class: 'lead', style: 'margin:0' }, 'Bookings and the engine, live. Numbers update as bookings happen.')),
      h('p', { class: 'muted small', id: 'as-of', style: 'margin:0' }, '\u00a0')),
    h('div', { class: 'kpis' },
      tile('bpm', 'Bookings per minute'), tile('fill', 'Fill rate'), tile('conversion', 'PENDING → CONFIRMED'), tile('expiries', 'Expired holds'),
      tile('hold', 'Median hold to confirm'), tile('pending', 'Open holds (PENDING)'), tile('batch', 'Batch size (avg)'), tile('sync', 'Journal sync (avg)')),
    h('div', { class: 'charts' },
      chartCard('minutes', 'Bookings per minute', 'The last 60 minutes, by what happened to them.', ['Minute', 'Held', 'Confirmed', 'Failed', 'Cancelled']),
      chartCard('doctors', 'Fill rate per doctor', 'Held and booked slots out of all open (non-closed) slots.', ['Doctor', 'Fill rate', 'Slots', 'Bookings']),
      chartCard('status', 'Bookings by status', 'Every booking so far.', ['Status', 'Bookings']),
      chartCard('vitals', 'Engine vitals', 'Sampled at every refresh: batch size, journal sync time, queue depth.', ['Time', 'Batch size', 'Sync ms', 'Queue depth']),
      h('section', { class: 'card chart-card activity-card', 'aria-labelledby': 'activity-title' },
        h('h2', { id: 'activity-title' }, 'Live activity'), h('p', { class: 'muted' }, 'The latest events from the feed.'),
        h('ul', { class: 'activity', id: 'activity' }, activityRows))));

  const grid = { color: '#e6eaee' };
  charts.minutes = new Chart(document.getElementById('chart-minutes'), {
    type: 'bar',
    data: { labels: [], datasets: ['held', 'confirmed', 'failed', 'cancelled'].map((k) => ({ label: k, data: [], backgroundColor: COLOURS[k], stack: 's', maxBarThickness: 14 })) },
    options: { scales: { x: { stacked: true, grid: { display: false }, ticks: { maxTicksLimit: 8 } }, y: { stacked: true, beginAtZero: true, grid, ticks: { precision: 0 } } }, plugins: { legend: { position: 'bottom' } } },
  });
  charts.doctors = new Chart(document.getElementById('chart-doctors'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'fill rate %', data: [], backgroundColor: COLOURS.line1, borderRadius: 4, maxBarThickness: 28 }] },
    options: { indexAxis: 'y', scales: { x: { min: 0, max: 100, grid, ticks: { callback: (v) => `${v}%` } }, y: { grid: { display: false } } }, plugins: { legend: { display: false } } },
  });
  charts.status = new Chart(document.getElementById('chart-status'), {
    type: 'doughnut',
    data: { labels: ['PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED'], datasets: [{ data: [0, 0, 0, 0], backgroundColor: [COLOURS.pending, COLOURS.confirmed, COLOURS.failed, COLOURS.cancelled] }] },
    options: { cutout: '62%', plugins: { legend: { position: 'right' } } },
  });
  charts.vitals = new Chart(document.getElementById('chart-vitals'), {
    type: 'line',
    data: { labels: [], datasets: [
      { label: 'batch size', data: [], borderColor: COLOURS.line1, backgroundColor: COLOURS.line1, yAxisID: 'y', pointRadius: 0, tension: 0.25 },
      { label: 'journal sync ms', data: [], borderColor: COLOURS.line2, backgroundColor: COLOURS.line2, yAxisID: 'y1', pointRadius: 0, tension: 0.25 },
      { label: 'queue depth', data: [], borderColor: COLOURS.line3, backgroundColor: COLOURS.line3, yAxisID: 'y', pointRadius: 0, tension: 0.25, borderDash: [4, 3] },
    ] },
    options: {
      scales: {
        x: { grid: { display: false }, ticks: { maxTicksLimit: 6 } },
        y: { beginAtZero: true, grid, title: { display: true, text: 'commands' } },
        y1: { beginAtZero: true, position: 'right', grid: { display: false }, title: { display: true, text: 'ms' } },
      },
      plugins: { legend: { position: 'bottom', labels: { usePointStyle: true, pointStyle: 'line' } } },
    },
  });
}

// ---- data -------------------------------------------------------------------------------------

async function refresh() {
  if (fetching) {
    again = true;
    return;
  }
  fetching = true;
  lastFetch = Date.now();
  try {
    stats = await api('/admin/stats', { admin: true, timeoutMs: 8000 });
    const s = stats.sequencer ?? {};
    vitals.push({
      at: Date.now(),
      batch: s.avgBatchSize ?? (s.batches ? s.commands / s.batches : 0),
      syncMs: s.journalSyncMsAvg ?? null,
      queue: s.queueDepth ?? 0,
    });
    if (vitals.length > VITALS_KEPT) vitals.shift();
    draw();
  } catch (error) {
    document.getElementById('as-of').textContent = `Could not refresh: ${describeError(error)}`;
  } finally {
    fetching = false;
    if (again) {
      again = false;
      scheduleRefresh();
    }
  }
}

// Feed events come in bursts: fetch at most once a second, soon after the first of a burst.
function scheduleRefresh() {
  if (refreshTimer) return;
  const wait = Math.max(300, 1000 - (Date.now() - lastFetch));
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, wait);
}

function subscribe() {
  const onEvent = (m) => {
    const doctor = directory.doctors.find((d) => d.id === m.slot?.doctorId);
    const who = doctor ? doctor.name : `doctor ${m.slot?.doctorId}`;
    const words = {
      SlotCreated: `Slot #${m.slot.id} created for ${who}`,
      SlotClosed: `Slot #${m.slot.id} closed (${who})`,
      SlotHeld: `Booking #${m.booking?.id} held with ${who}`,
      BookingConfirmed: `Booking #${m.booking?.id} confirmed with ${who}`,
      BookingExpired: `Booking #${m.booking?.id} expired (hold ran out)`,
      BookingCancelled: `Booking #${m.booking?.id} cancelled`,
      BookingRescheduled: `Booking #${m.booking?.id} moved to slot #${m.booking?.slotId} (${who})`,
    };
    // A move comes as two messages (the freed slot, then the new one): one line for it.
    if (m.event === 'BookingRescheduled' && m.slot?.id !== m.booking?.slotId) {
      scheduleRefresh();
      return;
    }
    // A bulk creation is one line, not hundreds.
    if (m.event === 'SlotCreated' && activity[0]?.bulk === m.slot.doctorId && Date.now() - activity[0].at < 3000) {
      activity[0].count += 1;
      activity[0].text = `${activity[0].count} slots created for ${who}`;
    } else {
      activity.unshift({ at: Date.now(), text: words[m.event] ?? m.event, bulk: m.event === 'SlotCreated' ? m.slot.doctorId : null, count: 1 });
      activity.length = Math.min(activity.length, activityRows.length);
    }
    drawActivity();
    scheduleRefresh();
  };
  const states = new Map();
  const onState = (clinicId) => (state) => {
    states.set(clinicId, state);
    const all = [...states.values()];
    showFeedState(all.includes('reconnecting') ? 'reconnecting' : all.includes('connecting') ? 'connecting' : 'live');
  };
  for (const c of directory.clinics) {
    states.set(c.id, 'connecting');
    feeds.push(new LiveFeed({ clinicId: c.id }, { onEvent, onState: onState(c.id) }).start());
  }
  showFeedState('connecting');
}

// ---- drawing ----------------------------------------------------------------------------------

const percent = (x) => `${(x * 100).toFixed(1)}%`;
const minuteLabel = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });

function setTile(key, value, sub) {
  tiles[key].value.textContent = value;
  tiles[key].sub.textContent = sub || '\u00a0';
}

function fillTable(key, rows) {
  replaceChildren(tables[key], rows.map((r) => h('tr', {}, r.map((c) => h('td', { class: 'num' }, c)))));
}

function draw() {
  const s = stats;
  const seq = s.sequencer ?? {};
  document.getElementById('as-of').textContent = `As of journal seq ${s.asOfSeq} · ${new Date().toLocaleTimeString()}`;
  const minutes = s.bookingsPerMinute ?? null;
  if (minutes) {
    const recent = minutes.slice(-5);
    const held = recent.reduce((n, m) => n + m.held, 0);
    setTile('bpm', (held / Math.max(1, recent.length)).toFixed(1), `${held} held in the last ${recent.length} min`);
  } else {
    setTile('bpm', '—', 'needs GET /admin/stats bookingsPerMinute');
  }
  setTile('fill', percent(s.fillRate), `${s.slots.held + s.slots.booked} of ${s.slots.total - s.slots.closed} open slots`);
  setTile('conversion', percent(s.conversion), `${s.bookings.confirmed} confirmed, ${s.bookings.failed} expired`);
  setTile('expiries', String(s.expiries), `of ${s.bookings.total} bookings`);
  const hold = s.holdToConfirmMs;
  setTile('hold', hold && hold.count ? seconds(hold.median) : '—', hold ? (hold.count ? `p90 ${seconds(hold.p90)} · ${hold.count} confirmed` : 'no confirmation yet') : 'needs holdToConfirmMs');
  setTile('pending', String(s.bookings.pending), `${s.bookings.total} bookings in all`);
  const batch = seq.avgBatchSize ?? (seq.batches ? seq.commands / seq.batches : null);
  setTile('batch', batch === null ? '—' : batch.toFixed(1), seq.lastBatchSize !== undefined ? `last ${seq.lastBatchSize} · queue ${seq.queueDepth}` : `queue depth ${seq.queueDepth ?? 0}`);
  setTile('sync', seq.journalSyncMsAvg !== undefined ? `${seq.journalSyncMsAvg.toFixed(2)} ms` : '—', seq.journalSyncMsAvg !== undefined ? 'per group commit (fsync)' : 'needs journalSyncMsAvg');

  // Bookings per minute.
  const mChart = charts.minutes;
  if (minutes) {
    mChart.data.labels = minutes.map((m) => minuteLabel(m.minute));
    ['held', 'confirmed', 'failed', 'cancelled'].forEach((k, i) => { mChart.data.datasets[i].data = minutes.map((m) => m[k]); });
    fillTable('minutes', minutes.filter((m) => m.held || m.confirmed || m.failed || m.cancelled).reverse()
      .map((m) => [minuteLabel(m.minute), m.held, m.confirmed, m.failed, m.cancelled]));
  } else {
    document.getElementById('chart-minutes-note').textContent = 'This slotd does not report bookings per minute yet.';
  }
  mChart.update('none');

  // Fill rate per doctor.
  const dChart = charts.doctors;
  if (s.perDoctor) {
    const rows = s.perDoctor.map((p) => ({ p, name: directory.doctors.find((d) => d.id === p.doctorId)?.name ?? `Doctor ${p.doctorId}` }));
    dChart.data.labels = rows.map((r) => r.name);
    dChart.data.datasets[0].data = rows.map((r) => Math.round(r.p.fillRate * 1000) / 10);
    fillTable('doctors', rows.map((r) => [r.name, percent(r.p.fillRate), r.p.slots.total, r.p.bookings.total]));
  } else {
    document.getElementById('chart-doctors-note').textContent = 'This slotd does not report per-doctor numbers yet.';
  }
  dChart.update('none');

  const b = s.bookings;
  charts.status.data.datasets[0].data = [b.pending, b.confirmed, b.failed, b.cancelled];
  charts.status.update('none');
  fillTable('status', [['PENDING', b.pending], ['CONFIRMED', b.confirmed], ['FAILED', b.failed], ['CANCELLED', b.cancelled]]);

  const vChart = charts.vitals;
  vChart.data.labels = vitals.map((v) => new Date(v.at).toLocaleTimeString());
  vChart.data.datasets[0].data = vitals.map((v) => v.batch);
  vChart.data.datasets[1].data = vitals.map((v) => v.syncMs);
  vChart.data.datasets[2].data = vitals.map((v) => v.queue);
  vChart.update('none');
  fillTable('vitals', vitals.slice(-10).reverse().map((v) => [new Date(v.at).toLocaleTimeString(), v.batch.toFixed(1), v.syncMs === null ? '—' : v.syncMs.toFixed(2), v.queue]));
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60000).toFixed(1)} min`;
}

function drawActivity() {
  activityRows.forEach((row, i) => {
    const a = activity[i];
    row.children[0].textContent = a ? new Date(a.at).toLocaleTimeString() : '';
    row.children[1].textContent = a ? a.text : i === 0 ? 'Waiting for the first event…' : '';
  });
}
