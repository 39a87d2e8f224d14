// This device's bookings and waitlist entries in localStorage: their tokens (the capability
// to see and change them) and what the pages show about their slots and days.
const KEY = 'slotd.bookings';
const WAITLIST_KEY = 'slotd.waitlist';

function readAll(key = KEY) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || '{}');
    return value && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

function writeAll(all, key = KEY) {
  try {
    localStorage.setItem(key, JSON.stringify(all));
  } catch {
    // Storage full or disabled: the copy link still carries the token.
  }
}

export function saveBooking(record) {
  const all = readAll();
  all[record.id] = { ...(all[record.id] ?? {}), ...record };
  writeAll(all);
}

export function loadBooking(id) {
  return readAll()[id] ?? null;
}

export function allBookings() {
  return Object.values(readAll()).sort((a, b) => b.id - a.id);
}

// PENDING holds of this device that have not run out yet.
export function openHolds(now = Date.now()) {
  return allBookings().filter((b) => b.status === 'PENDING' && Date.parse(b.expiresAt) > now);
}

// Waitlist entries: {id, token, doctorId, day (YYYY-MM-DD at the clinic), status, offer}.
export function saveEntry(entry) {
  const all = readAll(WAITLIST_KEY);
  all[entry.id] = { ...(all[entry.id] ?? {}), ...entry };
  writeAll(all, WAITLIST_KEY);
}

export function allEntries() {
  return Object.values(readAll(WAITLIST_KEY)).sort((a, b) => a.id - b.id);
}
