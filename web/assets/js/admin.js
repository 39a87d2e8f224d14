// The admin page (/admin): a doctor's week of slots by status (live; close a slot), slots
// created by pattern (with a preview and the conflicting slot named on 409), bookings with
// patient names (confirm/cancel as admin), and clinics and doctors. Tabs live in the hash:
// #schedule?doctor=&week=, #create?doctor=, #bookings, #directory.
import { api, ApiError, describeError } from './http.js';
import { LiveFeed, slotFromFeed } from './feed.js';
import * as t from './time.js';
import { h, replaceChildren, reconcile, showFeedState, announce, whileBusy, badge } from './dom.js';
import { loadDirectory } from './directory.js';
import { expandPattern, overlaps } from './pattern.js';
import { signedIn } from './admin-auth.js';

const main = document.getElementById('main');
const STATUSES = ['AVAILABLE', 'HELD', 'BOOKED', 'CLOSED'];
let directory = null;
let view = null;
// The partitions this slotd serves (GET /healthz), home first; empty when it serves one.
let partitions = [];

start();

async function start() {
  await signedIn(main);
  window.addEventListener('hashchange', route);
  route();
}

function parseHash() {
  const [tab, query] = location.hash.slice(1).split('?');
  return { tab: tab || 'schedule', params: new URLSearchParams(query ?? '') };
}

function setHash(tab, params) {
  const query = new URLSearchParams(params).toString();
  history.replaceState(null, '', `#${tab}${query ? `?${query}` : ''}`);
}

async function route() {
  view?.stop?.();
  view = null;
  showFeedState('idle');
  const { tab, params } = parseHash();
  for (const a of document.querySelectorAll('#admin-nav a')) {
    if (a.getAttribute('href') === `#${tab}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    // Fresh on every tab switch: doctors added elsewhere (another admin, the API) show up.
    [directory, partitions] = await Promise.all([loadDirectory({ admin: true }),
      api('/healthz').then((health) => (health.partitions ?? []).map((p) => p.partition))]);
  } catch (error) {
    replaceChildren(main, h('div', { class: 'alert alert-error', role: 'alert' }, h('p', {}, describeError(error)),
      h('button', { class: 'btn', type: 'button', onclick: route }, 'Try again')));
    return;
  }
  const views = { schedule: scheduleView, create: createView, bookings: bookingsView, directory: directoryView };
  view = (views[tab] ?? scheduleView)(params);
}

function doctorById(id) {
  return directory.doctors.find((d) => d.id === id) ?? null;
}

function doctorSelect(id, selected, { includeAll = false } = {}) {
  const select = h('select', { id },
    includeAll ? h('option', { value: '' }, 'All doctors') : null,
    directory.clinics.map((c) => {
      const doctors = directory.doctors.filter((d) => d.clinicId === c.id);
      return doctors.length ? h('optgroup', { label: c.name }, doctors.map((d) => h('option', { value: d.id }, `${d.name} — ${d.specialty}`))) : null;
    }));
  const known = directory.doctors.some((d) => d.id === selected);
  select.value = known ? String(selected) : includeAll ? '' : String(directory.doctors[0]?.id ?? '');
  return select;
}

function confirmDialog({ title, text, yes }) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const yesButton = document.getElementById('confirm-yes');
  const noButton = document.getElementById('confirm-no');
  yesButton.textContent = yes;
  return new Promise((resolve) => {
    yesButton.onclick = () => { dialog.close(); resolve(true); };
    noButton.onclick = () => dialog.close();
    dialog.onclose = () => resolve(false);
    dialog.showModal();
    noButton.focus();
  });
}

function noDoctors() {
  return h('div', { class: 'empty' }, h('p', {}, 'There are no doctors yet.'),
    h('a', { class: 'btn', href: '#directory' }, 'Add a doctor'));
}

function rangeText(slot, tz) {
  return `${t.formatDay(slot.start, tz)} ${t.formatTime(slot.start, tz)}–${t.formatTime(slot.end, tz)}`;
}

// ---- schedule: one doctor's week --------------------------------------------------------------

function scheduleView(params) {
  document.title = 'Schedule · slotd admin';
  if (!directory.doctors.length) {
    replaceChildren(main, h('h1', {}, 'Schedule'), noDoctors());
    return null;
  }
  let doctor = doctorById(Number(params.get('doctor'))) ?? directory.doctors[0];
  let tz = doctor.clinic.timeZone;
  let week = t.parseDayKey(params.get('week') ?? '') ? t.mondayOf(params.get('week')) : t.mondayOf(t.dayKeyOf(Date.now(), tz));
  const slots = new Map();
  let feed = null;
  let loaded = false;

  const select = doctorSelect('s-doctor', doctor.id);
  const weekLabel = h('span', { class: 'week-label', id: 'week-label', 'aria-live': 'polite' });
  const zone = h('p', { class: 'muted small', id: 'schedule-zone' });
  const legend = h('div', { class: 'legend', id: 'legend' });
  const grid = h('div', { class: 'week', id: 'week' });
  const message = h('div', { class: 'alert alert-error', role: 'alert', id: 'schedule-message' });
  const createLink = h('a', { class: 'btn btn-secondary btn-small', id: 's-create' }, '+ Create slots');
  const columns = [];
  for (let i = 0; i < 7; i++) {
    const heading = h('h3');
    const list = h('ul');
    const none = h('p', { class: 'none' }, 'No slots');
    const col = h('section', { class: 'day-col' }, heading, list, none);
    columns.push({ heading, list, none, col });
    grid.append(col);
  }
  const go = (weeks) => {
    week = weeks === 0 ? t.mondayOf(t.dayKeyOf(Date.now(), tz)) : t.addDays(week, 7 * weeks);
    render();
  };

  const render = () => {
    setHash('schedule', { doctor: doctor.id, week });
    createLink.href = `#create?doctor=${doctor.id}`;
    const last = t.addDays(week, 6);
    const a = t.dayChip(week);
    const b = t.dayChip(last);
    weekLabel.textContent = `${a.date} – ${b.date} ${last.slice(0, 4)}`;
    zone.textContent = `Times in ${t.zoneLabel(tz, t.startOfDay(week, tz))}, ${doctor.clinic.name}’s local time.`;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (let i = 0; i < 7; i++) {
      const key = t.addDays(week, i);
      const chip = t.dayChip(key);
      const c = columns[i];
      c.col.dataset.day = key;
      replaceChildren(c.heading, `${chip.dow} `, h('span', { class: 'muted' }, chip.date));
      const daySlots = [...slots.values()].filter((s) => t.dayKeyOf(s.start, tz) === key).sort((x, y) => x.start - y.start);
      for (const s of daySlots) counts[s.status] += 1;
      c.none.hidden = daySlots.length > 0;
      c.none.textContent = loaded ? 'No slots' : 'Loading…';
      reconcile(c.list, daySlots, (s) => `${s.id}-${s.status}`, (s) => {
        const label = `${t.formatTime(s.start, tz)}–${t.formatTime(s.end, tz)}`;
        const content = [h('span', { class: 't' }, label), h('span', { class: 's' }, s.status)];
        const item = s.status === 'AVAILABLE'
          ? h('button', { type: 'button', class: 'chip chip-AVAILABLE', 'data-slot-id': s.id, 'aria-label': `${label} AVAILABLE. Close this slot`, onclick: () => closeSlot(s.id) }, content)
          : h('div', { class: `chip chip-${s.status}`, 'data-slot-id': s.id }, content);
        return h('li', {}, item);
      }, () => {});
    }
    replaceChildren(legend, STATUSES.map((s) => h('span', { class: `badge badge-${s}`, 'data-count': counts[s] }, `${s} ${counts[s]}`)));
  };

  const closeSlot = async (id) => {
    const slot = slots.get(id);
    replaceChildren(message);
    const yes = await confirmDialog({
      title: 'Close this slot?',
      text: `${rangeText(slot, tz)} with ${doctor.name}. Patients will no longer see or book it.`,
      yes: 'Close slot',
    });
    if (!yes) return;
    try {
      await api(`/slots/${id}`, { method: 'DELETE', admin: true });
      slots.set(id, { ...slot, status: 'CLOSED' });
      render();
      announce(`Closed ${rangeText(slot, tz)}.`);
    } catch (error) {
      replaceChildren(message, error.code === 'slot_booked'
        ? 'This slot was just held or booked by a patient; cancel that booking first.'
        : describeError(error));
    }
  };

  const subscribe = () => {
    feed?.stop();
    slots.clear();
    loaded = false;
    feed = new LiveFeed({ doctorIds: [doctor.id] }, {
      onSnapshot(list) {
        slots.clear();
        for (const s of list) slots.set(s.id, slotFromFeed(s));
        loaded = true;
        render();
      },
      onEvent(m) {
        slots.set(m.slot.id, slotFromFeed(m.slot));
        render();
      },
      onState: showFeedState,
    }).start();
    showFeedState(feed.state);
    render();
  };

  select.addEventListener('change', () => {
    doctor = doctorById(Number(select.value));
    tz = doctor.clinic.timeZone;
    subscribe();
  });

  replaceChildren(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedule'),
      h('p', { class: 'lead' }, 'A doctor’s week by status, live. Select an AVAILABLE slot to close it.')),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 's-doctor' }, 'Doctor'), select),
      h('div', { class: 'week-nav', role: 'group', 'aria-label': 'Week' },
        h('button', { class: 'btn btn-secondary btn-small', type: 'button', onclick: () => go(-1), 'aria-label': 'Previous week' }, '‹'),
        weekLabel,
        h('button', { class: 'btn btn-secondary btn-small', type: 'button', onclick: () => go(1), 'aria-label': 'Next week' }, '›'),
        h('button', { class: 'btn btn-ghost btn-small', type: 'button', onclick: () => go(0) }, 'This week')),
      createLink),
    zone, legend, message, grid);
  subscribe();
  return { stop: () => feed?.stop() };
}

// ---- create slots by pattern ----------------------------------------------------------------

const WEEKDAYS = [[1, 'Mon'], [2, 'Tue'], [3, 'Wed'], [4, 'Thu'], [5, 'Fri'], [6, 'Sat'], [7, 'Sun']];

function createView(params) {
  document.title = 'Create slots · slotd admin';
  if (!directory.doctors.length) {
    replaceChildren(main, h('h1', {}, 'Create slots'), noDoctors());
    return null;
  }
  const select = doctorSelect('p-doctor', Number(params.get('doctor')) || null);
  const doctor = () => doctorById(Number(select.value));
  const tomorrow = t.addDays(t.dayKeyOf(Date.now(), doctor().clinic.timeZone), 1);
  const from = h('input', { type: 'date', id: 'p-from', value: tomorrow, required: true });
  const to = h('input', { type: 'date', id: 'p-to', value: t.addDays(tomorrow, 6), required: true });
  const dayStart = h('input', { type: 'time', id: 'p-start', value: '09:00', required: true });
  const dayEnd = h('input', { type: 'time', id: 'p-end', value: '17:00', required: true });
  const length = h('select', { id: 'p-length' }, [10, 15, 20, 30, 45, 60, 90].map((m) => h('option', { value: m }, `${m} minutes`)));
  length.value = '30';
  const weekdayBoxes = WEEKDAYS.map(([n, label]) => h('input', { type: 'checkbox', value: n, checked: n <= 5, id: `p-wd-${n}` }));
  const breaks = h('div', { class: 'breaks', id: 'p-breaks' });
  const addBreak = (start = '12:00', end = '13:00') => {
    const index = breaks.children.length + 1;
    const s = h('input', { type: 'time', value: start, 'aria-label': `Break ${index} starts` });
    const e = h('input', { type: 'time', value: end, 'aria-label': `Break ${index} ends` });
    const row = h('div', { class: 'break-row' }, s, h('span', { 'aria-hidden': 'true' }, '–'), e,
      h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': `Remove break ${index}`, onclick: () => { row.remove(); update(); } }, 'Remove'));
    breaks.append(row);
    update();
    s.focus();
  };
  const skip = h('input', { type: 'checkbox', id: 'p-skip' });
  const skipRow = h('div', { class: 'check', hidden: true, style: 'margin-top:0.75rem' }, skip,
    h('label', { for: 'p-skip', style: 'margin:0;font-weight:500' }, 'Leave out the new slots that overlap existing ones'));
  const preview = h('div', { class: 'preview card', id: 'p-preview', 'aria-live': 'polite' });
  const result = h('div', { class: 'alert', role: 'alert', id: 'p-result' });
  const submit = h('button', { class: 'btn', type: 'submit', id: 'p-submit' }, 'Create slots');

  let plan = { slots: [] };
  let conflicts = [];
  let existingFor = '';
  let existing = [];
  let fetchTimer = null;

  const pattern = () => ({
    fromDay: from.value, toDay: to.value,
    weekdays: weekdayBoxes.filter((b) => b.checked).map((b) => Number(b.value)),
    dayStart: dayStart.value, dayEnd: dayEnd.value, slotMinutes: Number(length.value),
    breaks: [...breaks.children].map((row) => ({ start: row.children[0].value, end: row.children[2].value })),
  });
  const toSend = () => {
    const slots = plan.slots ?? [];  // an invalid plan sends nothing
    return skip.checked ? slots.filter((p) => !conflicts.some((c) => c.planned === p)) : slots;
  };

  // The doctor's existing slots around the planned range, for the overlap preview.
  const loadExisting = async () => {
    if (!plan.slots?.length) return;  // an invalid plan has no slot list
    const d = doctor();
    const first = plan.slots[0].start - t.DAY_MS;
    const last = plan.slots[plan.slots.length - 1].end;
    const key = `${d.id}:${first}:${last}`;
    if (key === existingFor) return;
    try {
      const list = await api(`/slots/${d.id}?from=${new Date(first).toISOString()}&to=${new Date(last).toISOString()}`);
      existing = list.map(slotFromFeed);
      existingFor = key;
      update();
    } catch {
      // The preview shows the count; the server still refuses overlaps and the 409 names them.
    }
  };

  const update = () => {
    const d = doctor();
    const tz = d.clinic.timeZone;
    plan = expandPattern(pattern(), tz);
    if (plan.error) {
      clearTimeout(fetchTimer);  // a check scheduled for the last valid pattern is moot
      conflicts = [];
      skipRow.hidden = true;
      replaceChildren(preview, h('p', { class: 'muted', style: 'margin:0' }, plan.error));
      submit.disabled = true;
      submit.textContent = 'Create slots';
      return;
    }
    const key = plan.slots.length ? `${d.id}:${plan.slots[0].start - t.DAY_MS}:${plan.slots[plan.slots.length - 1].end}` : '';
    conflicts = key && key === existingFor ? overlaps(plan.slots, existing) : [];
    skipRow.hidden = conflicts.length === 0;
    const n = toSend().length;
    submit.disabled = n === 0;
    submit.textContent = n ? `Create ${n} ${n === 1 ? 'slot' : 'slots'}` : 'Create slots';
    const first = plan.slots[0];
    const last = plan.slots[plan.slots.length - 1];
    replaceChildren(preview,
      h('div', { class: 'row', style: 'align-items:baseline' }, h('span', { class: 'count', id: 'p-count' }, String(plan.slots.length)),
        h('span', {}, `new ${plan.slots.length === 1 ? 'slot' : 'slots'} for ${d.name} on ${plan.days.length} ${plan.days.length === 1 ? 'day' : 'days'}`)),
      first ? h('p', { class: 'muted small', style: 'margin:0.25rem 0 0' },
        `From ${rangeText(first, tz)} to ${rangeText(last, tz)} · ${t.zoneLabel(tz, first.start)} (the clinic’s local time)`)
        : h('p', { class: 'muted small', style: 'margin:0.25rem 0 0' }, 'No slot fits this pattern.'),
      conflicts.length ? h('p', { class: 'small', id: 'p-conflicts', style: 'margin:0.4rem 0 0;color:var(--warn)' },
        `${conflicts.length} of them overlap existing slots, e.g. ${rangeText(conflicts[0].planned, tz)} overlaps slot #${conflicts[0].existing.id} (${rangeText(conflicts[0].existing, tz)}, ${conflicts[0].existing.status}).`) : null);
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(loadExisting, 250);
  };

  const form = h('form', { class: 'card', id: 'pattern-form', novalidate: true },
    h('div', { class: 'form-grid' },
      h('div', { class: 'field span-2' }, h('label', { for: 'p-doctor' }, 'Doctor'), select),
      h('div', { class: 'field' }, h('label', { for: 'p-from' }, 'First day'), from),
      h('div', { class: 'field' }, h('label', { for: 'p-to' }, 'Last day'), to),
      h('fieldset', { class: 'span-4' }, h('legend', {}, 'Weekdays'),
        h('div', { class: 'checks' }, WEEKDAYS.map(([n, label], i) => h('label', { class: 'check', for: `p-wd-${n}` }, weekdayBoxes[i], label)))),
      h('div', { class: 'field' }, h('label', { for: 'p-start' }, 'Day starts'), dayStart),
      h('div', { class: 'field' }, h('label', { for: 'p-end' }, 'Day ends'), dayEnd),
      h('div', { class: 'field span-2' }, h('label', { for: 'p-length' }, 'Slot length'), length),
      h('fieldset', { class: 'span-4' }, h('legend', {}, 'Breaks'), breaks,
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'p-add-break', onclick: () => addBreak() }, '+ Add a break'))),
    preview, skipRow,
    h('div', { style: 'margin-top:1rem' }, result),
    h('div', { class: 'row', style: 'margin-top:1rem' }, submit));
  // A changed pattern makes the last result stale; the preview alone refreshes it silently.
  const edited = () => {
    replaceChildren(result);
    result.className = 'alert';
    update();
  };
  form.addEventListener('input', edited);
  form.addEventListener('change', edited);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const d = doctor();
    const tz = d.clinic.timeZone;
    const sending = toSend();
    if (!sending.length) return;
    try {
      const created = await whileBusy(submit, 'Creating…', () => api('/slots', {
        method: 'POST', admin: true, timeoutMs: 60000,
        body: { doctorId: d.id, slots: sending.map((s) => ({ start: new Date(s.start).toISOString(), end: new Date(s.end).toISOString() })) },
      }));
      existingFor = '';
      update();
      result.className = 'alert alert-ok';
      replaceChildren(result, h('p', {}, h('strong', {}, `Created ${created.length} ${created.length === 1 ? 'slot' : 'slots'} for ${d.name}. `),
        h('a', { href: `#schedule?doctor=${d.id}&week=${t.mondayOf(sending[0].day)}` }, 'See them in the schedule')));
      announce(`Created ${created.length} slots.`);
    } catch (error) {
      result.className = 'alert alert-error';
      if (error.code === 'slot_overlap') {
        existingFor = '';
        await loadExisting();
        const clash = overlaps(sending, existing)[0];
        replaceChildren(result, h('p', {}, h('strong', {}, 'Nothing was created. '), clash
          ? `The new slot ${rangeText(clash.planned, tz)} overlaps slot #${clash.existing.id} (${rangeText(clash.existing, tz)}, ${clash.existing.status}). Change the pattern, or leave out the overlapping slots.`
          : 'A new slot overlaps an existing slot of this doctor (it may have been created a moment ago). Check the schedule and try again.'));
      } else if (error.status === 413) {
        replaceChildren(result, h('p', {}, h('strong', {}, 'Nothing was created: too many slots at once. '), `${error.message}. Choose fewer days.`));
      } else {
        replaceChildren(result, h('p', {}, h('strong', {}, 'Nothing was created. '), describeError(error)));
      }
    }
  });

  replaceChildren(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Create slots'),
      h('p', { class: 'lead' }, 'Lay out a doctor’s open times by pattern. Times are at the clinic’s local clock, so 09:00 stays 09:00 across daylight-saving changes.')),
    form);
  update();
  return { stop: () => clearTimeout(fetchTimer) };
}

// ---- bookings ---------------------------------------------------------------------------------

function bookingsView(params) {
  document.title = 'Bookings · slotd admin';
  const clinic = h('select', { id: 'b-clinic' }, h('option', { value: '' }, 'All clinics'),
    directory.clinics.map((c) => h('option', { value: c.id }, c.name)));
  const doctor = doctorSelect('b-doctor', Number(params.get('doctor')) || null, { includeAll: true });
  const status = h('select', { id: 'b-status' }, h('option', { value: '' }, 'Any status'),
    ['PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED'].map((s) => h('option', { value: s }, s)));
  clinic.value = params.get('clinic') ?? '';
  status.value = params.get('status') ?? '';
  const notice = h('div', { class: 'notice-slot', id: 'b-notice' });
  const body = h('tbody', { id: 'b-rows' });
  const more = h('button', { class: 'btn btn-secondary', type: 'button', id: 'b-more', hidden: true }, 'Load more');
  const message = h('div', { class: 'alert alert-error', role: 'alert', id: 'b-message' });
  const rows = new Map(); // booking id → {row, booking}
  let next = null;
  let fresh = 0;
  const feeds = [];

  const query = (after) => {
    const q = new URLSearchParams({ limit: '50' });
    if (clinic.value) q.set('clinicId', clinic.value);
    if (doctor.value) q.set('doctorId', doctor.value);
    if (status.value) q.set('status', status.value);
    if (after) q.set('after', after);
    return q;
  };

  const load = async (append) => {
    replaceChildren(message);
    setHash('bookings', Object.fromEntries([['clinic', clinic.value], ['doctor', doctor.value], ['status', status.value]].filter(([, v]) => v)));
    try {
      const page = await api(`/admin/bookings?${query(append ? next : null)}`, { admin: true });
      if (!append) {
        rows.clear();
        replaceChildren(body);
        fresh = 0;
        replaceChildren(notice);
      }
      for (const b of page.bookings) addRow(b);
      next = page.next ?? null;
      more.hidden = next === null;
      if (!rows.size) replaceChildren(body, h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No bookings match these filters.')));
    } catch (error) {
      replaceChildren(message, error.status === 404
        ? 'This slotd does not list bookings yet (GET /admin/bookings is missing).' : describeError(error));
    }
  };

  const addRow = (b) => {
    const d = doctorById(b.doctorId);
    const tz = d?.clinic.timeZone ?? 'UTC';
    const statusCell = h('td', { class: 'status' });
    const whenCell = h('td', { class: 'nowrap when' }, b.start ? `${t.formatDateTime(Date.parse(b.start), tz)}` : `slot #${b.slotId}`);
    const actions = h('td', {});
    const row = h('tr', { 'data-booking-id': b.id },
      h('td', { class: 'num' }, `#${b.id}`),
      h('td', {}, b.patientName),
      h('td', {}, d ? d.name : `Doctor ${b.doctorId}`),
      whenCell,
      statusCell,
      h('td', { class: 'nowrap muted' }, b.createdAt ? t.formatDateTime(Date.parse(b.createdAt), tz) : ''),
      actions);
    const entry = { row, booking: b, statusCell, whenCell, tz, actions };
    rows.set(b.id, entry);
    body.append(row);
    fill(entry);
  };

  const fill = (entry) => {
    const b = entry.booking;
    replaceChildren(entry.statusCell, badge(b.status));
    const buttons = [];
    if (b.status === 'PENDING') buttons.push(h('button', { class: 'btn btn-small', type: 'button', onclick: (e) => act(entry, 'confirm', e.currentTarget) }, 'Confirm'));
    if (b.status === 'PENDING' || b.status === 'CONFIRMED') buttons.push(h('button', { class: 'btn btn-secondary btn-small', type: 'button', onclick: (e) => act(entry, 'cancel', e.currentTarget) }, 'Cancel'));
    replaceChildren(entry.actions, h('div', { class: 'actions' }, buttons));
  };

  const act = async (entry, action, button) => {
    replaceChildren(message);
    if (action === 'cancel' && !(await confirmDialog({ title: `Cancel booking #${entry.booking.id}?`, text: `${entry.booking.patientName}’s booking is cancelled and the slot becomes free again.`, yes: 'Cancel booking' }))) return;
    try {
      const reply = await whileBusy(button, action === 'confirm' ? 'Confirming…' : 'Cancelling…', () =>
        api(`/booking/${entry.booking.id}/${action}`, { method: 'POST', admin: true }));
      entry.booking = { ...entry.booking, status: reply.status };
      fill(entry);
    } catch (error) {
      replaceChildren(message, `Booking #${entry.booking.id}: ${describeError(error)}`);
    }
  };

  // Status changes of listed bookings show in place; new bookings are announced, not inserted.
  const onEvent = (m) => {
    if (m.type !== 'booking') return;
    const entry = rows.get(m.booking.id);
    if (entry) {
      // A move: the message about the new slot carries its time.
      if (m.event === 'BookingRescheduled' && m.slot?.id === m.booking.slotId && entry.booking.slotId !== m.booking.slotId) {
        entry.booking = { ...entry.booking, slotId: m.booking.slotId, start: m.slot.start };
        replaceChildren(entry.whenCell, t.formatDateTime(Date.parse(m.slot.start), entry.tz));
      }
      if (entry.booking.status !== m.booking.status) {
        entry.booking = { ...entry.booking, status: m.booking.status };
        fill(entry);
      }
    } else if (m.event === 'SlotHeld') {
      fresh += 1;
      replaceChildren(notice, h('div', { class: 'alert alert-info row', style: 'justify-content:space-between' },
        h('span', {}, `${fresh} new ${fresh === 1 ? 'booking' : 'bookings'} since this list loaded.`),
        h('button', { class: 'btn btn-small', type: 'button', onclick: () => load(false) }, 'Show them')));
    }
  };
  for (const c of directory.clinics) {
    feeds.push(new LiveFeed({ clinicId: c.id }, { onEvent, onState: showFeedState }).start());
  }

  for (const el of [clinic, doctor, status]) el.addEventListener('change', () => load(false));
  more.addEventListener('click', () => load(true));
  replaceChildren(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Bookings'),
      h('p', { class: 'lead' }, 'Newest first, with patient names. Statuses change here as they happen.')),
    h('div', { class: 'toolbar' },
      h('div', { class: 'field' }, h('label', { for: 'b-clinic' }, 'Clinic'), clinic),
      h('div', { class: 'field' }, h('label', { for: 'b-doctor' }, 'Doctor'), doctor),
      h('div', { class: 'field' }, h('label', { for: 'b-status' }, 'Status'), status)),
    notice, message,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Bookings'),
      h('thead', {}, h('tr', {}, ['Booking', 'Patient', 'Doctor', 'Appointment', 'Status', 'Held at', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      body)),
    h('div', { style: 'margin-top:1rem' }, more));
  load(false);
  return { stop: () => feeds.forEach((f) => f.stop()) };
}

// ---- clinics and doctors ------------------------------------------------------------------------

function directoryView() {
  document.title = 'Clinics & doctors · slotd admin';
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const clinicName = h('input', { type: 'text', id: 'c-name', required: true, maxlength: 200 });
  const clinicZone = h('input', { type: 'text', id: 'c-zone', list: 'c-zones', value: t.browserZone(), required: true, autocomplete: 'off', 'aria-describedby': 'c-zone-hint' });
  const clinicResult = h('div', { class: 'alert', role: 'alert', id: 'c-result' });
  // A slotd serving several partitions: the new clinic's partition (its ids carry it).
  const clinicPartition = h('select', { id: 'c-partition', 'aria-describedby': 'c-partition-hint' },
    partitions.map((p, i) => h('option', { value: p }, i === 0 ? `${p} (home)` : String(p))));
  const partitionOf = (id) => Math.floor(id / 2 ** 40);
  const doctorName = h('input', { type: 'text', id: 'd-name', required: true, maxlength: 200 });
  const specialty = h('input', { type: 'text', id: 'd-specialty', required: true, maxlength: 200, list: 'd-specialties' });
  const clinicOfDoctor = h('select', { id: 'd-clinic' }, directory.clinics.map((c) => h('option', { value: c.id }, c.name)));
  const doctorResult = h('div', { class: 'alert', role: 'alert', id: 'd-result' });

  const addClinic = h('form', { class: 'stack', id: 'clinic-form', novalidate: true },
    h('h3', {}, 'Add a clinic'),
    h('div', { class: 'field' }, h('label', { for: 'c-name' }, 'Name'), clinicName),
    h('div', { class: 'field' }, h('label', { for: 'c-zone' }, 'Time zone'), clinicZone,
      h('span', { class: 'hint', id: 'c-zone-hint' }, 'An IANA zone such as Europe/Berlin: slot times are shown and planned in it.'),
      h('datalist', { id: 'c-zones' }, zones.map((z) => h('option', { value: z })))),
    partitions.length > 1 ? h('div', { class: 'field' }, h('label', { for: 'c-partition' }, 'Partition'), clinicPartition,
      h('span', { class: 'hint', id: 'c-partition-hint' }, 'The clinic, its doctors, slots and bookings live in this partition for good.')) : null,
    clinicResult, h('div', {}, h('button', { class: 'btn', type: 'submit' }, 'Add clinic')));
  const addDoctor = h('form', { class: 'stack', id: 'doctor-form', novalidate: true },
    h('h3', {}, 'Add a doctor'),
    h('div', { class: 'field' }, h('label', { for: 'd-name' }, 'Name'), doctorName),
    h('div', { class: 'field' }, h('label', { for: 'd-specialty' }, 'Specialty'), specialty,
      h('datalist', { id: 'd-specialties' }, [...new Set(directory.doctors.map((d) => d.specialty))].map((s) => h('option', { value: s })))),
    h('div', { class: 'field' }, h('label', { for: 'd-clinic' }, 'Clinic'), clinicOfDoctor),
    doctorResult, h('div', {}, h('button', { class: 'btn', type: 'submit' }, 'Add doctor')));

  const submitWith = (form, result, check, send) => form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const problem = check();
    result.className = 'alert alert-error';
    if (problem) return replaceChildren(result, problem);
    try {
      const text = await whileBusy(form.querySelector('[type=submit]'), 'Saving…', send);
      await route();
      announce(text);
      const again = document.getElementById(result.id);
      if (again) {
        again.className = 'alert alert-ok';
        replaceChildren(again, text);
      }
    } catch (error) {
      replaceChildren(result, error.code === 'invalid_field' && form === addClinic
        ? `“${clinicZone.value}” is not a time zone this server knows. Pick one from the list.` : describeError(error));
    }
  });
  submitWith(addClinic, clinicResult,
    () => (!clinicName.value.trim() ? 'Enter the clinic’s name.' : !zones.includes(clinicZone.value) && clinicZone.value !== 'UTC' ? 'Choose a time zone from the list (e.g. Europe/Berlin).' : null),
    async () => {
      const path = partitions.length > 1 ? `/clinics?partition=${clinicPartition.value}` : '/clinics';
      const c = await api(path, { method: 'POST', admin: true, body: { name: clinicName.value.trim(), timeZone: clinicZone.value } });
      return `Added ${c.name} (clinic #${c.id}).`;
    });
  submitWith(addDoctor, doctorResult,
    () => (!doctorName.value.trim() ? 'Enter the doctor’s name.' : !specialty.value.trim() ? 'Enter a specialty.' : null),
    async () => {
      const d = await api('/doctors', { method: 'POST', admin: true, body: { name: doctorName.value.trim(), specialty: specialty.value.trim(), clinicId: Number(clinicOfDoctor.value) } });
      return `Added ${d.name} (doctor #${d.id}). Patients see them at once.`;
    });

  replaceChildren(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Clinics & doctors')),
    h('div', { class: 'two-col' },
      h('section', { class: 'card', 'aria-labelledby': 'clinics-title' }, h('h2', { id: 'clinics-title' }, 'Clinics'),
        h('div', { class: 'table-wrap' }, h('table', { id: 'clinics' },
          h('thead', {}, h('tr', {}, ['#', 'Name', 'Time zone', ...(partitions.length > 1 ? ['Partition'] : [])].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, directory.clinics.map((c) => h('tr', {}, h('td', { class: 'num' }, c.id), h('td', {}, c.name), h('td', {}, c.timeZone),
            partitions.length > 1 ? h('td', { class: 'num' }, partitionOf(c.id)) : null))))),
        h('div', { style: 'margin-top:1rem' }, addClinic)),
      h('section', { class: 'card', 'aria-labelledby': 'doctors-title' }, h('h2', { id: 'doctors-title' }, 'Doctors'),
        h('div', { class: 'table-wrap' }, h('table', { id: 'doctors' },
          h('thead', {}, h('tr', {}, ['#', 'Name', 'Specialty', 'Clinic'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, directory.doctors.map((d) => h('tr', {}, h('td', { class: 'num' }, d.id), h('td', {}, h('a', { href: `#schedule?doctor=${d.id}` }, d.name)), h('td', {}, d.specialty), h('td', {}, d.clinic.name)))))),
        h('div', { style: 'margin-top:1rem' }, addDoctor))));
  return null;
}
