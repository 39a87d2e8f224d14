// The admin's slot pattern ("09:00–17:00 on weekdays, 30 minutes, lunch 12:00–13:00")
// expanded into UTC slots. The pattern is in the clinic's local time: 09:00 stays 09:00 at
// the clinic on both sides of a DST change. Pure (tests/ui/time.test.mjs runs it in node).
import { addDays, daysBetween, parseClock, parseDayKey, weekdayOf, zonedToUtc, clockText } from './time.js';

export const MAX_PATTERN_DAYS = 366;

// pattern: {fromDay, toDay ('YYYY-MM-DD'), weekdays: [1..7] (1 = Monday), dayStart, dayEnd
// ('HH:MM'), slotMinutes, breaks: [{start, end}]}.
// Returns {slots: [{start, end, day, clock}], days} or {error: 'plain words'}.
export function expandPattern(pattern, timeZone) {
  const { fromDay, toDay, weekdays, slotMinutes } = pattern;
  if (!parseDayKey(fromDay)) return { error: 'Choose a first day.' };
  if (!parseDayKey(toDay)) return { error: 'Choose a last day.' };
  const span = daysBetween(fromDay, toDay);
  if (span < 0) return { error: 'The last day is before the first day.' };
  if (span >= MAX_PATTERN_DAYS) return { error: `Choose at most ${MAX_PATTERN_DAYS} days at once.` };
  if (!weekdays?.length) return { error: 'Choose at least one weekday.' };
  const dayStart = parseClock(pattern.dayStart);
  const dayEnd = parseClock(pattern.dayEnd);
  if (dayStart === null) return { error: 'The day start must be a time like 09:00.' };
  if (dayEnd === null) return { error: 'The day end must be a time like 17:00.' };
  if (dayEnd <= dayStart) return { error: 'The day must end after it starts.' };
  const length = Number(slotMinutes);
  if (!Number.isInteger(length) || length < 5 || length > 24 * 60) {
    return { error: 'A slot lasts from 5 minutes to 24 hours (whole minutes).' };
  }
  const breaks = [];
  for (const b of pattern.breaks ?? []) {
    const start = parseClock(b.start);
    const end = parseClock(b.end);
    if (start === null || end === null) return { error: 'Every break needs a start and an end time.' };
    if (end <= start) return { error: `The break ${b.start}–${b.end} must end after it starts.` };
    breaks.push({ start, end });
  }
  breaks.sort((a, b) => a.start - b.start);

  const slots = [];
  const days = [];
  for (let i = 0; i <= span; i++) {
    const day = addDays(fromDay, i);
    if (!weekdays.includes(weekdayOf(day))) continue;
    const { year, month, day: dom } = parseDayKey(day);
    let minute = dayStart;
    let any = false;
    while (minute + length <= dayEnd) {
      const clash = breaks.find((b) => minute < b.end && b.start < minute + length);
      if (clash) {
        minute = clash.end;
        continue;
      }
      const endMinute = minute + length;
      const start = zonedToUtc(year, month, dom, Math.floor(minute / 60), minute % 60, timeZone);
      const endDay = endMinute >= 24 * 60 ? parseDayKey(addDays(day, 1)) : { year, month, day: dom };
      const end = zonedToUtc(endDay.year, endDay.month, endDay.day, Math.floor((endMinute % 1440) / 60), endMinute % 60, timeZone);
      // A slot across a DST gap could come out empty; skip it rather than send a bad range.
      if (end > start) {
        slots.push({ start, end, day, clock: clockText(minute) });
        any = true;
      }
      minute = endMinute;
    }
    if (any) days.push(day);
  }
  return { slots, days };
}

// The existing slots that planned slots overlap, as [{planned, existing}], one per planned
// slot. CLOSED slots are ignored, as the engine does; live slots of one doctor never
// overlap each other, so sorted by start their ends are sorted too.
export function overlaps(planned, existing) {
  const sorted = existing.filter((s) => s.status !== 'CLOSED').sort((a, b) => a.start - b.start);
  const out = [];
  for (const p of planned) {
    // Binary search for the first existing slot that ends after p starts.
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].end <= p.start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length && sorted[i].start < p.end; i++) {
      if (sorted[i].end > p.start) {
        out.push({ planned: p, existing: sorted[i] });
        break;
      }
    }
  }
  return out;
}
