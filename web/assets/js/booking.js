// The booking page (/b/:id): the booking's status, live from the feed. PENDING shows a
// countdown to expiresAt with Confirm and Cancel; then CONFIRMED, CANCELLED or FAILED
// (the hold ran out). A live booking can move to another free time of its doctor; a
// confirmed (or then cancelled) one downloads as an .ics for a calendar. The booking token
// comes from the link (#token=… or ?token=…) or from this device's localStorage, and is
// sent as X-Booking-Token.
import { api, ApiError, describeError, newIdempotencyKey } from './http.js';
import { LiveFeed, slotFromFeed } from './feed.js';
import * as t from './time.js';
import { h, replaceChildren, showFeedState, announce, whileBusy, badge } from './dom.js';
import { loadDirectory } from './directory.js';
import * as store from './bookings-store.js';

const main = document.getElementById('main');
const id = Number(location.pathname.split('/')[2]);
const HEADINGS = {
  PENDING: 'Confirm your booking',
  CONFIRMED: 'You’re booked',
  CANCELLED: 'Booking cancelled',
  FAILED: 'The hold ran out',
};

let record = store.loadBooking(id) ?? { id };
let booking = null; // the last GET /booking/:id answer, status kept current
let feed = null;
let countdownTimer = null;
let pollTimer = null;
let message = null; // the alert element under the buttons

adoptTokenFromLink();
start();

// A link carries the token; keep it on this device and take it out of the address bar.
function adoptTokenFromLink() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  const fromQuery = new URLSearchParams(location.search).get('token');
  const token = fromHash || fromQuery;
  if (token && /^[0-9a-f]{32}$/.test(token)) {
    record = { ...record, token };
    store.saveBooking(record);
  }
  if (fromHash || fromQuery) history.replaceState(null, '', `/b/${id}`);
}

async function start() {
  try {
    booking = await api(`/booking/${id}?include=slot`, { bookingToken: record.token });
  } catch (error) {
    return showLoadError(error);
  }
  await completeRecord();
  render();
  follow();
}

function showLoadError(error) {
  const notFound = error instanceof ApiError && error.status === 404;
  replaceChildren(main, h('div', { class: 'booking' }, h('div', { class: 'card' },
    h('h1', {}, notFound ? 'Booking not found' : 'We could not load your booking'),
    h('p', { role: 'alert' }, notFound ? `There is no booking number ${id}. Check the link you were given.` : describeError(error)),
    h('div', { class: 'row' },
      notFound ? null : h('button', { class: 'btn', type: 'button', onclick: () => location.reload() }, 'Try again'),
      h('a', { class: notFound ? 'btn' : 'btn btn-secondary', href: '/' }, 'Book a time')))));
}

// What the page shows about the slot: from this device's record, from the booking itself
// when the server includes it, else found among the doctors' slots.
async function completeRecord() {
  const update = { status: booking.status, expiresAt: booking.expiresAt, createdAt: booking.createdAt, slotId: booking.slotId };
  if (booking.patientName) update.patientName = booking.patientName;
  if (booking.doctorId && booking.start) {
    Object.assign(update, { doctorId: booking.doctorId, start: Date.parse(booking.start), end: Date.parse(booking.end) });
  }
  record = { ...record, ...update };
  if (!record.doctorId || !record.start || !record.doctorName) {
    try {
      const directory = await loadDirectory();
      if (!record.doctorId) {
        for (const d of directory.doctors) {
          const slots = await api(`/slots/${d.id}`);
          const s = slots.find((x) => x.id === booking.slotId);
          if (s) {
            Object.assign(record, { doctorId: d.id, start: Date.parse(s.start), end: Date.parse(s.end) });
            break;
          }
        }
      }
      const doctor = directory.doctors.find((d) => d.id === record.doctorId);
      if (doctor) {
        Object.assign(record, { doctorName: doctor.name, specialty: doctor.specialty, clinicId: doctor.clinicId,
          clinicName: doctor.clinic.name, timeZone: doctor.clinic.timeZone });
      }
    } catch {
      // The status still shows; the slot details stay empty.
    }
  }
  if (record.token) store.saveBooking(record);
}

// ---- rendering --------------------------------------------------------------------------

function render() {
  const status = booking.status;
  const tz = record.timeZone ?? 'UTC';
  document.title = `${HEADINGS[status] ?? 'Your booking'} · slotd`;
  const hasToken = Boolean(record.token && booking.patientName !== undefined);
  const statePanel = h('div', { class: 'state-panel', id: 'state-panel' });
  message = h('div', { class: 'alert alert-error', role: 'alert', id: 'booking-message' });
  const details = h('dl', {},
    h('dt', {}, 'When'), h('dd', { id: 'when' }, record.start
      ? [`${t.formatLongDay(record.start, tz)}, ${t.formatTime(record.start, tz)}–${t.formatTime(record.end, tz)}`,
        h('br'), h('span', { class: 'muted small' }, `${t.zoneLabel(tz, record.start)} — the clinic’s local time`)]
      : 'Unknown'),
    h('dt', {}, 'Doctor'), h('dd', {}, record.doctorName ? `${record.doctorName}${record.specialty ? `, ${record.specialty}` : ''}` : '—'),
    h('dt', {}, 'Clinic'), h('dd', {}, record.clinicName ?? '—'),
    h('dt', {}, 'Patient'), h('dd', { id: 'patient' }, booking.patientName ?? 'Hidden without the booking link'),
    h('dt', {}, 'Booking number'), h('dd', {}, `#${id}`));
  replaceChildren(main, h('div', { class: 'booking' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: record.doctorId ? `/?doctor=${record.doctorId}` : '/' }, '← Book another time')),
    h('section', { class: 'card', 'aria-labelledby': 'booking-title' },
      h('div', { class: 'booking-status' }, h('h1', { id: 'booking-title', style: 'margin:0' }, HEADINGS[status] ?? 'Your booking'),
        h('span', { id: 'booking-status' }, badge(status))),
      statePanel, message, details),
    hasToken ? copyLinkCard() : h('section', { class: 'card' },
      h('h2', {}, 'Manage this booking'),
      h('p', {}, 'To confirm or cancel, open the booking link you copied when you booked (it carries a secret token).'))));
  renderState(statePanel, hasToken);
}

function renderState(panel, hasToken) {
  clearInterval(countdownTimer);
  const status = booking.status;
  if (status === 'PENDING') {
    const time = h('span', { class: 'time', id: 'countdown' });
    const bar = h('span');
    const note = h('span', { id: 'countdown-note' });
    const confirm = h('button', { class: 'btn', type: 'button', id: 'confirm', disabled: !hasToken, onclick: () => change('confirm', confirm) }, 'Confirm booking');
    const cancel = h('button', { class: 'btn btn-secondary', type: 'button', id: 'cancel', disabled: !hasToken, onclick: () => askCancel(cancel) }, 'Cancel');
    replaceChildren(panel,
      h('div', { class: 'countdown', role: 'timer', 'aria-live': 'off', 'aria-labelledby': 'countdown-note' },
        h('div', { class: 'row', style: 'justify-content:space-between' }, note, time),
        h('div', { class: 'progress', 'aria-hidden': 'true' }, bar)),
      h('div', { class: 'row' }, confirm, moveButton(hasToken), cancel));
    const expires = Date.parse(booking.expiresAt);
    const total = Math.max(1, expires - Date.parse(booking.createdAt));
    const offset = record.clockOffsetMs ?? 0;
    let warned = false;
    const tick = () => {
      const left = Math.max(0, expires - (Date.now() + offset));
      const seconds = Math.ceil(left / 1000);
      time.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
      bar.style.transform = `scaleX(${left / total})`;
      if (left > 0) {
        note.textContent = 'This time is held for you. Confirm before the hold runs out:';
        if (!warned && left <= 30_000) {
          warned = true;
          announce('30 seconds left to confirm your booking.');
        }
      } else {
        note.textContent = 'Time’s up. Releasing the hold…';
        confirm.disabled = true;
        clearInterval(countdownTimer);
        watchExpiry();
      }
    };
    tick();
    countdownTimer = setInterval(tick, 250);
  } else if (status === 'CONFIRMED') {
    const cancel = h('button', { class: 'btn btn-secondary', type: 'button', id: 'cancel', disabled: !hasToken, onclick: () => askCancel(cancel) }, 'Cancel booking');
    replaceChildren(panel, outcome('CONFIRMED', '✓', 'Your appointment is confirmed.',
      'Please arrive a few minutes early. If you cannot come, move it to another time or cancel here so someone else can have the time.'),
    h('div', { class: 'row' }, calendarLink(hasToken, 'Add to calendar (.ics)'), moveButton(hasToken), cancel));
  } else if (status === 'CANCELLED') {
    replaceChildren(panel, outcome('CANCELLED', '✕', 'This booking was cancelled.', 'The time is free again for other patients.'),
      h('div', { class: 'row' },
        h('a', { class: 'btn', href: record.doctorId ? `/?doctor=${record.doctorId}` : '/' }, 'Book another time'),
        // A calendar that has the appointment takes it out when it opens this file (STATUS:CANCELLED).
        booking.confirmedAt ? calendarLink(hasToken, 'Remove from your calendar (.ics)') : null));
  } else if (status === 'FAILED') {
    replaceChildren(panel, outcome('FAILED', '!', 'The hold ran out before it was confirmed.',
      'The time was released for other patients. You can pick a time again — maybe the same one.'),
    h('a', { class: 'btn', href: record.doctorId ? `/?doctor=${record.doctorId}` : '/' }, 'Choose a time'));
  }
}

// The .ics of this booking: a plain link (calendar apps open links, not scripts), with the
// token in the query since the page sends no Referer and the answer is never cached.
function calendarLink(hasToken, text) {
  if (!hasToken) return null;
  return h('a', { class: 'btn btn-secondary', id: 'calendar-link', download: `appointment-${id}.ics`,
    href: `/booking/${id}/calendar.ics?token=${record.token}` }, text);
}

function moveButton(hasToken) {
  if (!hasToken || !record.doctorId) return null;
  return h('button', { class: 'btn btn-secondary', type: 'button', id: 'move', onclick: () => openMove() }, 'Change time');
}

function outcome(status, icon, title, text) {
  return h('div', { class: `outcome outcome-${status}`, id: 'outcome' },
    h('span', { class: 'icon', 'aria-hidden': 'true' }, icon),
    h('div', {}, h('strong', {}, title), h('p', { style: 'margin:0' }, text)));
}

function copyLinkCard() {
  const url = `${location.origin}/b/${id}#token=${record.token}`;
  const input = h('input', { type: 'text', readonly: true, value: url, id: 'booking-link', 'aria-describedby': 'link-hint', onfocus: (e) => e.target.select() });
  const status = h('span', { class: 'small muted', role: 'status', id: 'copy-status' });
  const button = h('button', { class: 'btn btn-secondary', type: 'button', id: 'copy-link' }, 'Copy link');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(url);
      status.textContent = 'Link copied.';
    } catch {
      input.focus();
      input.select();
      status.textContent = 'Press Ctrl+C (or ⌘C) to copy the selected link.';
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'link-title' },
    h('h2', { id: 'link-title' }, 'Keep this link'),
    h('p', { id: 'link-hint', class: 'muted' }, 'It opens this booking on any device. Anyone who has it can confirm or cancel the booking, so share it only with people you trust.'),
    h('div', { class: 'field' }, h('label', { for: 'booking-link' }, 'Booking link'), h('div', { class: 'copy-link' }, input, button)),
    status);
}

function setStatus(status, { announceIt = true } = {}) {
  if (!booking || booking.status === status) return;
  booking = { ...booking, status };
  // Only whether it ever was confirmed matters here (a cancelled one then has a calendar file).
  if (status === 'CONFIRMED' && !booking.confirmedAt) booking.confirmedAt = new Date().toISOString();
  record = { ...record, status };
  if (record.token) store.saveBooking(record);
  render();
  if (announceIt) announce(HEADINGS[status] ?? status);
  if (status !== 'PENDING') clearTimeout(pollTimer);
}

function showMessage(text) {
  if (message) replaceChildren(message, text);
}

// ---- actions ----------------------------------------------------------------------------

async function change(action, button) {
  showMessage('');
  const key = newIdempotencyKey();
  try {
    const reply = await whileBusy(button, action === 'confirm' ? 'Confirming…' : 'Cancelling…', () =>
      api(`/booking/${id}/${action}`, { method: 'POST', bookingToken: record.token, idempotencyKey: key }));
    setStatus(reply.status);
  } catch (error) {
    if (!(error instanceof ApiError)) return showMessage(describeError(error));
    switch (error.code) {
      case 'booking_expired':
      case 'booking_failed':
        setStatus('FAILED');
        showMessage('Too late: the hold ran out before the confirmation arrived.');
        break;
      case 'booking_cancelled':
        setStatus('CANCELLED');
        showMessage('This booking had already been cancelled.');
        break;
      case 'forbidden':
        showMessage('This link’s token does not match the booking. Open the link you copied when you booked.');
        break;
      default:
        showMessage(error.isNetwork
          ? `We could not reach the booking service. ${error.message} Please try again — it is safe to press the button twice.`
          : describeError(error));
    }
  }
}

// ---- moving to another time: one request, the old time is freed in the same step -----------

function openMove() {
  const dialog = document.getElementById('move-dialog');
  const select = document.getElementById('move-slot');
  const error = document.getElementById('move-error');
  const submit = document.getElementById('move-submit');
  const tz = record.timeZone ?? 'UTC';
  let key = newIdempotencyKey();
  replaceChildren(error);

  const load = async () => {
    replaceChildren(select, h('option', { value: '' }, 'Loading free times…'));
    select.disabled = true;
    submit.disabled = true;
    try {
      const free = (await api(`/slots/${record.doctorId}?status=AVAILABLE&from=${new Date().toISOString()}`))
        .map(slotFromFeed).filter((s) => s.id !== record.slotId);
      const byDay = new Map();
      for (const s of free) {
        const day = t.dayKeyOf(s.start, tz);
        if (!byDay.has(day)) byDay.set(day, []);
        byDay.get(day).push(s);
      }
      if (!free.length) {
        replaceChildren(select, h('option', { value: '' }, 'No other free time right now'));
        return;
      }
      replaceChildren(select, [...byDay].slice(0, 28).map(([day, list]) => h('optgroup', { label: t.dayChip(day).long },
        list.map((s) => h('option', { value: s.id, 'data-start': s.start, 'data-end': s.end },
          `${t.formatDay(s.start, tz)}, ${t.formatTime(s.start, tz)}–${t.formatTime(s.end, tz)}`)))));
      select.disabled = false;
      submit.disabled = false;
    } catch (err) {
      replaceChildren(error, describeError(err));
    }
  };

  document.getElementById('move-keep').onclick = () => dialog.close();
  document.getElementById('move-form').onsubmit = async (e) => {
    e.preventDefault();
    const option = select.selectedOptions[0];
    if (!option?.value) return;
    replaceChildren(error);
    try {
      const moved = await whileBusy(submit, 'Moving…', () => api(`/booking/${id}/reschedule`, {
        method: 'POST', body: { slotId: Number(option.value) }, bookingToken: record.token, idempotencyKey: key,
      }));
      record = { ...record, slotId: moved.slotId, start: Number(option.dataset.start), end: Number(option.dataset.end) };
      booking = { ...booking, slotId: moved.slotId, status: moved.status };
      store.saveBooking(record);
      dialog.close();
      render();
      announce(`Your booking moved to ${t.formatDateTime(record.start, tz)}.`);
    } catch (err) {
      key = newIdempotencyKey();  // the next try is a new request
      if (err instanceof ApiError && err.code === 'slot_unavailable') {
        replaceChildren(error, h('strong', {}, 'That time was just taken. '), 'Nothing changed: your booking keeps its time. Please pick another one.');
        load();
      } else if (err instanceof ApiError && (err.code === 'booking_expired' || err.code === 'booking_failed')) {
        dialog.close();
        setStatus('FAILED');
        showMessage('The hold ran out before the move: the booking cannot change any more.');
      } else {
        replaceChildren(error, describeError(err));
      }
    }
  };
  dialog.showModal();
  load().then(() => select.focus());
}

function askCancel(button) {
  const dialog = document.getElementById('cancel-dialog');
  const keep = document.getElementById('cancel-keep');
  const confirmCancel = document.getElementById('cancel-confirm');
  keep.onclick = () => dialog.close();
  confirmCancel.onclick = () => {
    dialog.close();
    change('cancel', button);
  };
  dialog.showModal();
  keep.focus();
}

// ---- following the booking live -----------------------------------------------------------

function follow() {
  if (!record.doctorId) {
    // Without the slot's doctor there is no feed to follow: ask the server now and then.
    watchExpiry(5000);
    return;
  }
  feed = new LiveFeed({ doctorIds: [record.doctorId] }, {
    // A (re)subscription that had to start afresh may have missed our events: ask directly.
    onSnapshot() {
      refetch();
    },
    onEvent(message) {
      if (message.type === 'booking' && message.booking.id === id) {
        // Moved elsewhere (another device, or the clinic): fetch where to.
        if (message.booking.slotId !== record.slotId) refetch();
        else setStatus(message.booking.status);
      } else if (message.slot?.id === record.slotId && booking.status === 'PENDING') {
        const slot = slotFromFeed(message.slot);
        if (slot.status === 'AVAILABLE') refetch();
      }
    },
    onState: showFeedState,
  }).start();
  showFeedState(feed.state);
}

async function refetch() {
  try {
    const fresh = await api(`/booking/${id}?include=slot`, { bookingToken: record.token });
    if (fresh.slotId !== record.slotId && fresh.start) {
      record = { ...record, slotId: fresh.slotId, start: Date.parse(fresh.start), end: Date.parse(fresh.end) };
      booking = { ...booking, slotId: fresh.slotId, status: fresh.status };
      if (record.token) store.saveBooking(record);
      render();
      announce(`Your booking moved to ${t.formatDateTime(record.start, record.timeZone ?? 'UTC')}.`);
    }
    setStatus(fresh.status);
  } catch {
    // The feed brings the next change; the live indicator shows whether it is connected.
  }
}

// After the countdown ends the expiry event normally arrives on the feed within a moment;
// if the feed is down, ask the server a bounded number of times.
function watchExpiry(interval = 1500, tries = 40) {
  clearTimeout(pollTimer);
  if (booking.status !== 'PENDING' || tries <= 0) return;
  pollTimer = setTimeout(async () => {
    await refetch();
    watchExpiry(interval, tries - 1);
  }, interval);
}
