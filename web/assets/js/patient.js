// The patient page (/): doctors of every clinic (filter by clinic, specialty, name), then
// one doctor's days and slots, live from the feed; booking asks for a name and opens the
// booking page. A day without a free time offers the waitlist; the hold it brings shows
// here as soon as the feed says the day changed. URL: /?clinic=&specialty=&q= for the
// list, /?doctor=ID&day=YYYY-MM-DD.
import { api, ApiError, describeError, newIdempotencyKey } from './http.js';
import { LiveFeed, slotFromFeed } from './feed.js';
import * as t from './time.js';
import { h, replaceChildren, reconcile, showFeedState, announce, whileBusy, avatar, badge } from './dom.js';
import { loadDirectory } from './directory.js';
import * as store from './bookings-store.js';

const main = document.getElementById('main');
const DAYS_SHOWN = 28;
let directory = null;
let view = null; // the current view: {stop()}

window.addEventListener('popstate', () => route());
route();

function navigate(search) {
  history.pushState(null, '', search ? `/?${search}` : '/');
  route();
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

async function route() {
  view?.stop();
  view = null;
  const params = new URLSearchParams(location.search);
  const doctorId = Number(params.get('doctor'));
  let doctor = null;
  try {
    if (!directory) directory = await loadDirectory();
    doctor = doctorId ? directory.doctors.find((d) => d.id === doctorId) : null;
    if (doctorId && !doctor) {
      directory = await loadDirectory(); // a doctor added since this page loaded
      doctor = directory.doctors.find((d) => d.id === doctorId);
    }
  } catch (error) {
    showLoadError(error);
    return;
  }
  if (doctorId && !doctor) {
    showFeedState('idle');
    replaceChildren(main, h('div', { class: 'empty' },
      h('h1', {}, 'Doctor not found'),
      h('p', {}, 'This doctor is not (or no longer) listed.'),
      h('a', { class: 'btn', href: '/', onclick: link('') }, 'See all doctors')));
    return;
  }
  view = doctor ? doctorView(doctor, params) : doctorsView(params);
}

function link(search) {
  return (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(search);
  };
}

function showLoadError(error) {
  showFeedState('idle');
  const retry = h('button', { class: 'btn', type: 'button', onclick: () => { directory = null; route(); } }, 'Try again');
  replaceChildren(main, h('div', { class: 'alert alert-error', role: 'alert' },
    h('p', {}, h('strong', {}, 'We could not load the doctors. '), describeError(error)), retry));
}

// ---- the list of doctors ---------------------------------------------------------------

const nextFree = new Map(); // doctor id → Promise of the next AVAILABLE slot (or null)

function doctorsView(params) {
  showFeedState('idle');
  document.title = 'Book an appointment · slotd';
  const clinicSelect = h('select', { id: 'f-clinic' }, h('option', { value: '' }, 'All clinics'),
    directory.clinics.map((c) => h('option', { value: c.id }, c.name)));
  const specialties = [...new Set(directory.doctors.map((d) => d.specialty))].sort((a, b) => a.localeCompare(b));
  const specialtySelect = h('select', { id: 'f-specialty' }, h('option', { value: '' }, 'All specialties'),
    specialties.map((s) => h('option', { value: s }, s)));
  const nameInput = h('input', { id: 'f-name', type: 'search', placeholder: 'e.g. Okafor', autocomplete: 'off' });
  clinicSelect.value = params.get('clinic') ?? '';
  specialtySelect.value = params.get('specialty') ?? '';
  nameInput.value = params.get('q') ?? '';
  const count = h('p', { class: 'result-count', 'aria-live': 'polite' });
  const list = h('ul', { class: 'doctor-grid', id: 'doctors' });

  const render = () => {
    const clinicId = Number(clinicSelect.value) || null;
    const specialty = specialtySelect.value;
    const q = nameInput.value.trim().toLowerCase();
    const search = new URLSearchParams();
    if (clinicId) search.set('clinic', clinicId);
    if (specialty) search.set('specialty', specialty);
    if (q) search.set('q', nameInput.value.trim());
    history.replaceState(null, '', search.size ? `/?${search}` : '/');
    const shown = directory.doctors.filter((d) => (!clinicId || d.clinicId === clinicId) &&
      (!specialty || d.specialty === specialty) && (!q || d.name.toLowerCase().includes(q)));
    count.textContent = `${shown.length} ${shown.length === 1 ? 'doctor' : 'doctors'}`;
    if (!shown.length) {
      replaceChildren(list, h('li', { class: 'empty' }, directory.doctors.length
        ? 'No doctor matches these filters.' : 'No doctors are listed yet.'));
      return;
    }
    replaceChildren(list, shown.map(doctorCard));
  };
  clinicSelect.addEventListener('change', render);
  specialtySelect.addEventListener('change', render);
  nameInput.addEventListener('input', render);

  replaceChildren(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Book an appointment'),
      h('p', { class: 'lead' }, 'Choose a doctor to see their open times. Times are always shown at the clinic’s local time.')),
    myBookings(),
    h('div', { class: 'filters', role: 'search', 'aria-label': 'Filter doctors' },
      h('div', { class: 'field' }, h('label', { for: 'f-clinic' }, 'Clinic'), clinicSelect),
      h('div', { class: 'field' }, h('label', { for: 'f-specialty' }, 'Specialty'), specialtySelect),
      h('div', { class: 'field' }, h('label', { for: 'f-name' }, 'Doctor’s name'), nameInput)),
    count, list);
  render();
  return { stop() {} };
}

function doctorCard(d) {
  const next = h('p', { class: 'next none' }, 'Checking open times…');
  const href = `?doctor=${d.id}`;
  const card = h('li', { class: 'doctor-card', 'data-doctor-id': d.id },
    avatar(d.name),
    h('div', {},
      h('h2', {}, h('a', { href, onclick: link(`doctor=${d.id}`) }, d.name)),
      h('p', { class: 'meta' }, d.specialty),
      h('p', { class: 'meta' }, `${d.clinic.name} · ${d.clinic.timeZone}`),
      next));
  nextAvailable(d).then((slot) => {
    next.classList.toggle('none', !slot);
    next.textContent = slot
      ? `Next: ${t.formatDay(slot.start, d.clinic.timeZone)}, ${t.formatTime(slot.start, d.clinic.timeZone)}`
      : 'No open times in the next weeks';
  }, () => {
    next.textContent = 'Open the doctor to see times';
  });
  return card;
}

function nextAvailable(doctor) {
  if (!nextFree.has(doctor.id)) {
    const from = new Date().toISOString();
    const to = new Date(Date.now() + 60 * t.DAY_MS).toISOString();
    nextFree.set(doctor.id, limited(() =>
      api(`/slots/${doctor.id}?status=AVAILABLE&from=${from}&to=${to}`))
      .then((slots) => (slots.length ? slotFromFeed(slots[0]) : null)));
  }
  return nextFree.get(doctor.id);
}

// At most four of these look-ups at once, so a long list does not flood the server.
let running = 0;
const waiting = [];
function limited(task) {
  return new Promise((resolve, reject) => {
    const run = () => {
      running += 1;
      task().then(resolve, reject).finally(() => {
        running -= 1;
        waiting.shift()?.();
      });
    };
    if (running < 4) run();
    else waiting.push(run);
  });
}

function myBookings() {
  const now = Date.now();
  const mine = store.allBookings().filter((b) =>
    (b.status === 'PENDING' && Date.parse(b.expiresAt) > now) || (b.status === 'CONFIRMED' && (b.end ?? 0) > now));
  const waiting = store.allEntries().filter((e) => e.status === 'WAITING');
  if (!mine.length && !waiting.length) return null;
  return h('section', { class: 'card my-bookings', 'aria-labelledby': 'mine-title' },
    h('h2', { id: 'mine-title' }, 'Your bookings on this device'),
    h('ul', {}, mine.slice(0, 5).map((b) => h('li', {},
      badge(b.status),
      h('span', {}, b.start ? `${t.formatDateTime(b.start, b.timeZone ?? 'UTC')} · ${b.doctorName ?? ''}` : `Booking #${b.id}`),
      h('a', { href: `/b/${b.id}` }, b.status === 'PENDING' ? 'Confirm it' : 'View'))),
    waiting.slice(0, 5).map((e) => h('li', { 'data-entry-id': e.id },
      badge('WAITING'),
      h('span', {}, `Waiting for a time on ${t.dayChip(e.day).long}${e.doctorName ? ` · ${e.doctorName}` : ''}`),
      h('a', { href: `/?doctor=${e.doctorId}&day=${e.day}` }, 'See the day')))));
}

// ---- one doctor: days and slots, live ---------------------------------------------------

function doctorView(doctor, params) {
  const tz = doctor.clinic.timeZone;
  document.title = `${doctor.name} · Book an appointment`;
  const slots = new Map(); // id → {id, start, end, status}
  let selectedDay = params.get('day');
  let loaded = false;
  const dayList = h('ul', { class: 'days', id: 'days', 'aria-label': 'Days' });
  const dayTitle = h('h2', { id: 'day-title' });
  const slotList = h('ul', { class: 'slot-grid', id: 'slots', 'aria-labelledby': 'day-title' });
  const slotArea = h('section', { class: 'slot-area', 'aria-live': 'off' },
    h('p', { class: 'muted', id: 'slots-status' }, 'Loading open times…'));
  const waitlistArea = h('section', { class: 'waitlist', id: 'waitlist', 'aria-live': 'polite' });
  const browser = t.browserZone();

  replaceChildren(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/', onclick: link('') }, '← All doctors')),
    h('div', { class: 'doctor-head' }, avatar(doctor.name, true),
      h('div', {}, h('h1', {}, doctor.name), h('p', { class: 'muted', style: 'margin:0' }, `${doctor.specialty} · ${doctor.clinic.name}`))),
    h('p', { class: 'zone-note', id: 'zone-note' }, clockIcon(),
      h('span', {}, 'Times are in ', h('strong', {}, t.zoneLabel(tz)), ', the clinic’s local time.',
        browser !== tz ? ` Your device is set to ${browser}.` : '')),
    dayList, slotArea, waitlistArea);

  const booking = bookingDialog(doctor, slots, () => refreshFromHttp());
  const waitlist = waitlistPanel(doctor, slots, waitlistArea, () => selectedDay, () => render());

  const render = () => {
    const now = Date.now();
    const future = [...slots.values()].filter((s) => s.start >= now).sort((a, b) => a.start - b.start);
    const byDay = new Map();
    for (const s of future) {
      const key = t.dayKeyOf(s.start, tz);
      if (!byDay.has(key)) byDay.set(key, []);
      byDay.get(key).push(s);
    }
    const days = [...byDay.keys()].slice(0, DAYS_SHOWN);
    if (!days.length) {
      replaceChildren(dayList);
      replaceChildren(slotArea, h('div', { class: 'empty', id: 'slots-status' },
        loaded ? 'No open times right now. New times appear here as soon as the clinic adds them.' : 'Loading open times…'));
      waitlist.render(null);
      return;
    }
    if (!selectedDay || !byDay.has(selectedDay)) {
      selectedDay = days.find((k) => byDay.get(k).some((s) => s.status === 'AVAILABLE')) ?? days[0];
    }
    reconcile(dayList, days, (k) => k, (key) => {
      const chip = t.dayChip(key);
      const button = h('button', { type: 'button', class: 'day', 'data-day': key, onclick: () => selectDay(key) },
        h('span', { class: 'dow' }, chip.dow), h('span', { class: 'date' }, chip.date), h('span', { class: 'count' }));
      return h('li', {}, button);
    }, (li, key) => {
      const button = li.firstChild;
      const open = byDay.get(key).filter((s) => s.status === 'AVAILABLE').length;
      button.dataset.open = open;
      button.setAttribute('aria-pressed', String(key === selectedDay));
      button.lastChild.textContent = open ? `${open} open` : 'Full';
      button.setAttribute('aria-label', `${t.dayChip(key).long}: ${open ? `${open} open times` : 'no open times'}`);
    });
    dayTitle.textContent = t.dayChip(selectedDay).long;
    if (slotArea.firstChild !== dayTitle) replaceChildren(slotArea, dayTitle, slotList);
    reconcile(slotList, byDay.get(selectedDay), (s) => s.id, (s) => {
      const button = h('button', { type: 'button', class: 'slot', 'data-slot-id': s.id, onclick: () => pick(s.id) },
        h('span', { class: 't' }, t.formatTime(s.start, tz)), h('span', { class: 'n' }));
      return h('li', {}, button);
    }, (li, s) => {
      const button = li.firstChild;
      const mine = store.allBookings().find((b) => b.slotId === s.id && (b.status === 'PENDING' || b.status === 'CONFIRMED'));
      const free = s.status === 'AVAILABLE';
      const minutes = Math.round((s.end - s.start) / t.MINUTE_MS);
      button.dataset.status = s.status;
      button.dataset.mine = mine && !free ? (mine.status === 'PENDING' ? 'hold' : 'booking') : 'no';
      button.disabled = !free && !mine;
      const note = free ? `${minutes} min` : mine ? (mine.status === 'PENDING' ? 'Your hold' : 'Your booking')
        : s.status === 'CLOSED' ? 'Unavailable' : 'Taken';
      button.lastChild.textContent = note;
      button.setAttribute('aria-label', `${t.formatTime(s.start, tz)} to ${t.formatTime(s.end, tz)}, ${free ? 'available' : note.toLowerCase()}`);
    });
    waitlist.render(byDay.get(selectedDay).some((s) => s.status === 'AVAILABLE') ? 'open' : 'full');
  };

  const selectDay = (key) => {
    selectedDay = key;
    const search = new URLSearchParams({ doctor: doctor.id, day: key });
    history.replaceState(null, '', `/?${search}`);
    render();
  };

  const pick = (slotId) => {
    const slot = slots.get(slotId);
    const mine = store.allBookings().find((b) => b.slotId === slotId && (b.status === 'PENDING' || b.status === 'CONFIRMED'));
    if (mine && slot.status !== 'AVAILABLE') {
      location.assign(`/b/${mine.id}`);
      return;
    }
    if (slot.status === 'AVAILABLE') booking.open(slot);
  };

  const setSlot = (slot) => {
    const before = slots.get(slot.id);
    slots.set(slot.id, slot);
    booking.slotChanged(slot);
    if (before?.status === 'AVAILABLE' && slot.status !== 'AVAILABLE' && t.dayKeyOf(slot.start, tz) === selectedDay) {
      announce(`${t.formatTime(slot.start, tz)} is no longer available.`);
    }
  };

  // Used when the feed cannot be reached and after a refused booking: the durable state over HTTP.
  const refreshFromHttp = async () => {
    try {
      const list = await api(`/slots/${doctor.id}?from=${new Date().toISOString()}`);
      for (const s of list) setSlot(slotFromFeed(s));
      loaded = true;
      render();
    } catch {
      // The feed (or the next refresh) brings the list; the page says it is reconnecting.
    }
  };

  const feed = new LiveFeed({ doctorIds: [doctor.id] }, {
    onSnapshot(list) {
      slots.clear();
      for (const s of list) setSlot(slotFromFeed(s));
      loaded = true;
      render();
      waitlist.check();
    },
    onEvent(message) {
      setSlot(slotFromFeed(message.slot));
      render();
      // An offer is a hold of one of this doctor's slots: the entry says whether it is ours.
      if (message.slot?.status === 'HELD') waitlist.check();
    },
    onState: showFeedState,
  }).start();
  showFeedState(feed.state);
  // If the feed has not answered after a few seconds, show the times over HTTP meanwhile.
  const fallback = setTimeout(() => { if (!loaded) refreshFromHttp(); }, 4000);
  // Slots that start while the page is open drop off the list.
  const tick = setInterval(render, 60_000);
  return {
    stop() {
      feed.stop();
      clearTimeout(fallback);
      clearInterval(tick);
      booking.close();
      waitlist.close();
    },
  };
}

// ---- booking: name → POST /booking → the booking page ---------------------------------------

function bookingDialog(doctor, slots, refresh) {
  const tz = doctor.clinic.timeZone;
  const dialog = document.getElementById('book-dialog');
  const form = document.getElementById('book-form');
  const summary = document.getElementById('book-summary');
  const nameInput = document.getElementById('patient-name');
  const error = document.getElementById('book-error');
  const submit = document.getElementById('book-submit');
  const back = document.getElementById('book-cancel');
  let slot = null;
  let submitting = false;
  let conflicted = false;
  let idempotencyKey = null;

  const showError = (...content) => {
    replaceChildren(error, ...content);
  };
  // The slot is gone: say so, and turn "Back" into the way on (submitting does nothing now).
  const conflict = (text) => {
    conflicted = true;
    showError(h('p', {}, h('strong', {}, 'Sorry, this time was just taken. '), text));
    submit.disabled = true;
    back.textContent = 'Choose another time';
    back.focus();
  };

  const onSubmit = async (e) => {
    e.preventDefault();
    if (conflicted || submitting) return;
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.setAttribute('aria-invalid', 'true');
      showError('Please enter your name, so the clinic knows who is coming.');
      nameInput.focus();
      return;
    }
    nameInput.removeAttribute('aria-invalid');
    showError();
    submitting = true;
    const chosen = slot;
    try {
      const sentAt = Date.now();
      const b = await whileBusy(submit, 'Holding…', () => api('/booking', {
        method: 'POST', body: { slotId: chosen.id, patientName: name }, idempotencyKey,
      }));
      const receivedAt = Date.now();
      localStorage.setItem('slotd.patientName', name);
      store.saveBooking({
        id: b.id, token: b.token, slotId: b.slotId, status: b.status, patientName: b.patientName,
        createdAt: b.createdAt, expiresAt: b.expiresAt,
        // The server's clock minus ours, so the countdown ends when the server's hold does.
        clockOffsetMs: Date.parse(b.createdAt) - (sentAt + receivedAt) / 2,
        doctorId: doctor.id, doctorName: doctor.name, specialty: doctor.specialty,
        clinicId: doctor.clinicId, clinicName: doctor.clinic.name, timeZone: tz,
        start: chosen.start, end: chosen.end,
      });
      submitting = false;
      location.assign(`/b/${b.id}`);
    } catch (err) {
      submitting = false;
      handleError(err, chosen);
    }
  };

  const handleError = (err, chosen) => {
    if (!(err instanceof ApiError)) {
      showError(describeError(err));
      return;
    }
    if (err.code === 'slot_unavailable') {
      slots.set(chosen.id, { ...chosen, status: chosen.status === 'AVAILABLE' ? 'HELD' : chosen.status });
      conflict('Someone else booked it a moment before you. The list is up to date now: please pick another time.');
      refresh();
    } else if (err.code === 'slot_not_found') {
      conflict('This time no longer exists. Please pick another one.');
      refresh();
    } else if (err.code === 'too_many_holds') {
      const holds = store.openHolds();
      const n = holds.length;
      showError(n
        ? h('div', {}, h('p', {}, h('strong', {}, `You already have ${n} ${n === 1 ? 'time' : 'times'} on hold. `),
          `Confirm or cancel ${n === 1 ? 'it' : 'one of them'} before holding another, or wait until a hold runs out.`),
          h('ul', {}, holds.map((b) => h('li', {}, h('a', { href: `/b/${b.id}` },
            b.start ? `${t.formatDateTime(b.start, b.timeZone ?? 'UTC')} with ${b.doctorName}` : `Booking #${b.id}`)))))
        : h('p', {}, h('strong', {}, 'Too many times are on hold from your connection. '),
          `The clinic says: “${err.message}”. Confirm or cancel one of them, or wait a few minutes until a hold runs out.`));
    } else if (err.code === 'invalid_name' || err.code === 'invalid_field') {
      nameInput.setAttribute('aria-invalid', 'true');
      showError('Please enter a name of at most 200 characters.');
    } else if (err.isNetwork) {
      // The same Idempotency-Key is sent again, so a retry never books twice.
      showError(h('p', {}, h('strong', {}, 'We could not reach the booking service. '),
        `${err.message} Check your connection and press “Hold this time” again; you will not be booked twice.`));
    } else {
      showError(describeError(err));
    }
  };

  form.onsubmit = onSubmit;
  back.onclick = () => dialog.close();
  dialog.onclose = () => { slot = null; };

  return {
    open(s) {
      slot = s;
      conflicted = false;
      submitting = false;
      idempotencyKey = newIdempotencyKey();
      showError();
      nameInput.removeAttribute('aria-invalid');
      submit.disabled = false;
      back.textContent = 'Back';
      if (!nameInput.value) nameInput.value = localStorage.getItem('slotd.patientName') ?? '';
      replaceChildren(summary,
        h('strong', {}, `${t.formatLongDay(s.start, tz)}, ${t.formatTime(s.start, tz)}–${t.formatTime(s.end, tz)}`),
        h('span', { class: 'muted small' }, `${doctor.name} · ${doctor.clinic.name} · ${t.zoneLabel(tz, s.start)}`));
      dialog.showModal();
      nameInput.focus();
    },
    // A slot taken by someone else while the dialog shows it: say so at once.
    slotChanged(s) {
      if (slot && s.id === slot.id && s.status !== 'AVAILABLE' && !submitting && !conflicted && dialog.open) {
        conflict('Someone else booked it while you were typing. Please pick another time.');
      }
    },
    close() {
      if (dialog.open) dialog.close();
    },
  };
}

// ---- the waitlist: join a full day, see the offer when a time frees up --------------------

function waitlistPanel(doctor, slots, area, selectedDay, rerender) {
  const tz = doctor.clinic.timeZone;
  const dialog = document.getElementById('waitlist-dialog');
  const form = document.getElementById('waitlist-form');
  const summary = document.getElementById('waitlist-summary');
  const nameInput = document.getElementById('waitlist-name');
  const error = document.getElementById('waitlist-error');
  const submit = document.getElementById('waitlist-submit');
  let day = null;
  let submitting = false;
  let checking = null;

  // This device's entry for the doctor's day that still matters: waiting, or offered a
  // hold that has not ended.
  const entryOf = (key) => store.allEntries().reverse().find((e) => e.doctorId === doctor.id && e.day === key &&
    (e.status === 'WAITING' || (e.status === 'OFFERED' && ['PENDING', 'CONFIRMED'].includes(e.offer?.status))));

  // A new offer becomes this device's booking, so the booking page opens it with its token.
  const adopt = (entry) => {
    const o = entry.offer;
    if (!o) return;
    const slot = slots.get(o.slotId);
    store.saveBooking({
      id: o.bookingId, token: o.token, slotId: o.slotId, status: o.status, expiresAt: o.expiresAt,
      patientName: entry.patientName, doctorId: doctor.id, doctorName: doctor.name, specialty: doctor.specialty,
      clinicId: doctor.clinicId, clinicName: doctor.clinic.name, timeZone: tz,
      ...(slot ? { start: slot.start, end: slot.end } : {}),
    });
  };

  const remember = (fresh, before) => {
    const entry = { ...before, status: fresh.status, offer: fresh.offer };
    store.saveEntry(entry);
    if (entry.offer) adopt(entry);
    if (before.status === 'WAITING' && fresh.status === 'OFFERED') {
      const slot = slots.get(fresh.offer.slotId);
      announce(slot ? `A time came free for you: ${t.formatTime(slot.start, tz)}. Confirm it before the hold runs out.`
        : 'A time came free for you. Confirm it before the hold runs out.');
    }
    return entry;
  };

  // Asks the server about this doctor's entries that may have changed (one round at a time).
  const check = () => {
    if (checking) return checking;
    const open = store.allEntries().filter((e) => e.doctorId === doctor.id &&
      (e.status === 'WAITING' || (e.status === 'OFFERED' && e.offer?.status === 'PENDING')));
    if (!open.length) return Promise.resolve();
    checking = Promise.all(open.map(async (e) => {
      try {
        remember(await api(`/waitlist/${e.id}`, { waitlistToken: e.token }), e);
      } catch {
        // The next feed event asks again.
      }
    })).finally(() => {
      checking = null;
      rerender();
    });
    return checking;
  };

  const render = (dayState) => {
    const key = selectedDay();
    const entry = key ? entryOf(key) : null;
    if (!entry && dayState !== 'full') {
      replaceChildren(area);
      return;
    }
    if (!entry) {
      replaceChildren(area, h('div', { class: 'card', id: 'waitlist-join' },
        h('h2', {}, 'This day is full'),
        h('p', {}, 'Join the waitlist: when a time on this day frees up, it is held for you at once — first come, first served.'),
        h('button', { class: 'btn', type: 'button', id: 'waitlist-open', onclick: () => open(key) }, 'Join the waitlist')));
      return;
    }
    if (entry.status === 'WAITING') {
      replaceChildren(area, h('div', { class: 'alert alert-info', id: 'waitlist-status', 'data-status': 'WAITING' },
        h('p', {}, h('strong', {}, 'You’re on the waitlist for this day. '),
          'When a time frees up it is held for you, and it shows here — keep this page open or come back later.'),
        h('button', { class: 'btn btn-secondary', type: 'button', id: 'waitlist-leave', onclick: (e) => leave(entry, e.currentTarget) },
          'Leave the waitlist')));
      return;
    }
    const o = entry.offer;
    const slot = slots.get(o.slotId);
    const when = slot ? `${t.formatLongDay(slot.start, tz)}, ${t.formatTime(slot.start, tz)}–${t.formatTime(slot.end, tz)}` : `booking #${o.bookingId}`;
    replaceChildren(area, h('div', { class: 'alert alert-ok', id: 'waitlist-offer', 'data-status': o.status },
      o.status === 'PENDING'
        ? h('p', {}, h('strong', {}, 'A time came free for you: '), `${when}. It is held for you until ${t.formatTime(Date.parse(o.expiresAt), tz)}.`)
        : h('p', {}, h('strong', {}, 'You got a time from the waitlist: '), `${when}.`),
      h('a', { class: 'btn', id: 'waitlist-offer-link', href: `/b/${o.bookingId}` }, o.status === 'PENDING' ? 'Confirm it' : 'View booking')));
  };

  const open = (key) => {
    day = key;
    submitting = false;
    replaceChildren(error);
    nameInput.removeAttribute('aria-invalid');
    if (!nameInput.value) nameInput.value = localStorage.getItem('slotd.patientName') ?? '';
    replaceChildren(summary, h('strong', {}, t.dayChip(key).long),
      h('span', { class: 'muted small' }, `${doctor.name} · ${doctor.clinic.name} · ${t.zoneLabel(tz, t.startOfDay(key, tz))}`));
    dialog.showModal();
    nameInput.focus();
  };

  const leave = async (entry, button) => {
    try {
      await whileBusy(button, 'Leaving…', () => api(`/waitlist/${entry.id}`, { method: 'DELETE', waitlistToken: entry.token }));
      store.saveEntry({ ...entry, status: 'CANCELLED' });
      announce('You left the waitlist.');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'waitlist_entry_served') await check();
      else replaceChildren(area, h('div', { class: 'alert alert-error', role: 'alert' }, describeError(err)));
      return;
    }
    rerender();
  };

  form.onsubmit = async (e) => {
    e.preventDefault();
    if (submitting) return;
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.setAttribute('aria-invalid', 'true');
      replaceChildren(error, 'Please enter your name, so the clinic knows who is waiting.');
      nameInput.focus();
      return;
    }
    submitting = true;
    const key = day;
    try {
      const from = t.startOfDay(key, tz);
      const to = t.startOfDay(t.addDays(key, 1), tz);
      const entry = await whileBusy(submit, 'Joining…', () => api('/waitlist', {
        method: 'POST',
        body: { doctorId: doctor.id, from: new Date(from).toISOString(), to: new Date(to).toISOString(), patientName: name },
      }));
      localStorage.setItem('slotd.patientName', name);
      remember(entry, { id: entry.id, token: entry.token, doctorId: doctor.id, doctorName: doctor.name, day: key,
        patientName: name, status: 'WAITING' });
      dialog.close();
      if (entry.status !== 'OFFERED') announce('You are on the waitlist.');  // an offer announced itself
      rerender();
    } catch (err) {
      replaceChildren(error, describeError(err));
    } finally {
      submitting = false;
    }
  };
  document.getElementById('waitlist-cancel').onclick = () => dialog.close();

  return {
    render,
    check,
    close() {
      if (dialog.open) dialog.close();
    },
  };
}

function clockIcon() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 20 20');
  svg.setAttribute('width', '20');
  svg.setAttribute('height', '20');
  svg.setAttribute('aria-hidden', 'true');
  svg.innerHTML = '<circle cx="10" cy="10" r="8" fill="none" stroke="currentColor" stroke-width="1.8"/><path d="M10 5.5V10l3 2" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/>';
  return svg;
}
