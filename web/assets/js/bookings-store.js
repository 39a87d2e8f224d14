// This device's bookings in localStorage: the booking token (the capability to see and
// change a booking) and what the booking page shows about its slot.
const KEY = 'slotd.bookings';

function readAll() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || '{}');
    return value && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

function writeAll(all) {
  try {
    localStorage.setItem(KEY, JSON.stringify(all));
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
