// Times at a clinic's clock. The engine keeps UTC instants; every page shows them in the
// clinic's IANA zone and names it, so a patient abroad sees the clinic's time. Pure: runs
// in the browser and under node (tests/ui/time.test.mjs) with the platform's ICU.

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

const formatters = new Map();
function formatter(locale, options) {
  const key = `${locale ?? ''}|${JSON.stringify(options)}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, options);
    formatters.set(key, f);
  }
  return f;
}

// A zone the platform knows, else UTC (an old server sends no timeZone at all).
export function zoneOrUtc(timeZone) {
  if (!timeZone) return 'UTC';
  try {
    formatter('en-US', { timeZone });
    return timeZone;
  } catch {
    return 'UTC';
  }
}

// The wall clock at `ms` in `timeZone`: {year, month (1-12), day, hour, minute, second, weekday (1=Mon..7=Sun)}.
export function wallClock(ms, timeZone) {
  const f = formatter('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
    hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short',
  });
  const out = {};
  for (const p of f.formatToParts(new Date(ms))) {
    if (p.type === 'weekday') out.weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(p.value) + 1;
    else if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return out;
}

// How far the zone's clock is ahead of UTC at `ms`.
export function offsetMs(ms, timeZone) {
  const w = wallClock(ms, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

// The instant at which the zone's clock shows this wall time. A time skipped by a DST
// change (02:30 on a spring-forward night) lands after the gap, at 03:30; a time that
// happens twice (autumn) gives the later of the two.
export function zonedToUtc(year, month, day, hour, minute, timeZone) {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const first = offsetMs(wall, timeZone);
  let ms = wall - first;
  const second = offsetMs(ms, timeZone);
  if (second !== first) ms = wall - second;
  return ms;
}

// Calendar days as 'YYYY-MM-DD' keys, independent of any zone.
export function dayKeyOf(ms, timeZone) {
  const w = wallClock(ms, timeZone);
  return `${w.year}-${pad(w.month)}-${pad(w.day)}`;
}
export function parseDayKey(key) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(key ?? '');
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;
  return { year, month, day };
}
export function addDays(key, days) {
  const d = parseDayKey(key);
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}
// 1 = Monday … 7 = Sunday.
export function weekdayOf(key) {
  const d = parseDayKey(key);
  const js = new Date(Date.UTC(d.year, d.month - 1, d.day)).getUTCDay();
  return js === 0 ? 7 : js;
}
export function mondayOf(key) {
  return addDays(key, 1 - weekdayOf(key));
}
export function daysBetween(fromKey, toKey) {
  const a = parseDayKey(fromKey);
  const b = parseDayKey(toKey);
  return Math.round((Date.UTC(b.year, b.month - 1, b.day) - Date.UTC(a.year, a.month - 1, a.day)) / DAY_MS);
}
// The instant the zone's day `key` starts (midnight, or the first instant after a gap).
export function startOfDay(key, timeZone) {
  const d = parseDayKey(key);
  return zonedToUtc(d.year, d.month, d.day, 0, 0, timeZone);
}

// 'HH:MM' ↔ minutes since midnight.
export function parseClock(text) {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text ?? '');
  if (!m) return null;
  const hours = Number(m[1]);
  const minutes = Number(m[2]);
  if (hours > 24 || minutes > 59 || (hours === 24 && minutes !== 0)) return null;
  return hours * 60 + minutes;
}
export function clockText(minutes) {
  return `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// ---- display (the browser's locale, the clinic's zone) ----------------------------------

export function formatTime(ms, timeZone, locale) {
  return formatter(locale, { timeZone, hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
}
export function formatDay(ms, timeZone, locale) {
  return formatter(locale, { timeZone, weekday: 'short', day: 'numeric', month: 'short' }).format(new Date(ms));
}
export function formatLongDay(ms, timeZone, locale) {
  return formatter(locale, { timeZone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(ms));
}
export function formatDateTime(ms, timeZone, locale) {
  return formatter(locale, {
    timeZone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  }).format(new Date(ms));
}
// Parts of a day key for a day chip: {dow: 'Mon', date: '6 Jan'} (noon avoids DST edges).
export function dayChip(key, locale) {
  const d = parseDayKey(key);
  const noon = new Date(Date.UTC(d.year, d.month - 1, d.day, 12));
  return {
    dow: formatter(locale, { timeZone: 'UTC', weekday: 'short' }).format(noon),
    date: formatter(locale, { timeZone: 'UTC', day: 'numeric', month: 'short' }).format(noon),
    long: formatter(locale, { timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long' }).format(noon),
  };
}
// 'Europe/Berlin (CET)'; the abbreviation is the one in force at `ms`.
export function zoneLabel(timeZone, ms = Date.now(), locale) {
  const part = formatter(locale, { timeZone, timeZoneName: 'short' })
    .formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName');
  const short = part?.value;
  return short && short !== timeZone ? `${timeZone} (${short})` : timeZone;
}
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
