// The UI's time-zone arithmetic and slot patterns (web/assets/js/time.js, pattern.js),
// run in node with the platform's ICU time zone data — no browser, no server.
import test from 'node:test';
import assert from 'node:assert/strict';
import { zonedToUtc, wallClock, dayKeyOf, addDays, weekdayOf, mondayOf, startOfDay, zoneLabel } from '../../web/assets/js/time.js';
import { expandPattern, overlaps } from '../../web/assets/js/pattern.js';

const utc = (s) => Date.parse(s);
const isoOf = (ms) => new Date(ms).toISOString();

test('09:00 in Berlin is 08:00Z in winter and 07:00Z in summer (DST starts 2031-03-30)', () => {
  assert.equal(isoOf(zonedToUtc(2031, 3, 29, 9, 0, 'Europe/Berlin')), '2031-03-29T08:00:00.000Z');
  assert.equal(isoOf(zonedToUtc(2031, 3, 31, 9, 0, 'Europe/Berlin')), '2031-03-31T07:00:00.000Z');
  assert.equal(isoOf(zonedToUtc(2031, 10, 27, 9, 0, 'Europe/Berlin')), '2031-10-27T08:00:00.000Z');
});

test('09:00 in New York follows its own DST change (2031-03-09), not Europe\'s', () => {
  assert.equal(isoOf(zonedToUtc(2031, 3, 7, 9, 0, 'America/New_York')), '2031-03-07T14:00:00.000Z');
  assert.equal(isoOf(zonedToUtc(2031, 3, 10, 9, 0, 'America/New_York')), '2031-03-10T13:00:00.000Z');
});

test('a wall time skipped by spring-forward lands after the gap; a repeated one gives the later instant', () => {
  // 02:30 does not exist in Berlin on 2031-03-30: it becomes 03:30 CEST.
  const skipped = zonedToUtc(2031, 3, 30, 2, 30, 'Europe/Berlin');
  assert.equal(isoOf(skipped), '2031-03-30T01:30:00.000Z');
  const w = wallClock(skipped, 'Europe/Berlin');
  assert.deepEqual([w.hour, w.minute], [3, 30]);
  // 02:30 happens twice on 2031-10-26 (CEST, then CET).
  assert.equal(isoOf(zonedToUtc(2031, 10, 26, 2, 30, 'Europe/Berlin')), '2031-10-26T01:30:00.000Z');
});

test('the clinic\'s day, not the browser\'s: 23:30Z is already tomorrow in Tokyo and still today in New York', () => {
  const ms = utc('2031-01-06T23:30:00.000Z');
  assert.equal(dayKeyOf(ms, 'Asia/Tokyo'), '2031-01-07');
  assert.equal(dayKeyOf(ms, 'America/New_York'), '2031-01-06');
  assert.equal(dayKeyOf(ms, 'UTC'), '2031-01-06');
  assert.equal(isoOf(startOfDay('2031-01-07', 'Asia/Tokyo')), '2031-01-06T15:00:00.000Z');
});

test('day keys: weekdays, Mondays and month ends', () => {
  assert.equal(weekdayOf('2031-01-06'), 1); // a Monday
  assert.equal(weekdayOf('2031-01-12'), 7);
  assert.equal(mondayOf('2031-01-12'), '2031-01-06');
  assert.equal(addDays('2031-01-31', 1), '2031-02-01');
  assert.equal(addDays('2031-03-01', -1), '2031-02-28');
});

test('zone labels name the zone and its abbreviation at that instant', () => {
  assert.match(zoneLabel('Europe/Berlin', utc('2031-01-06T08:00:00.000Z'), 'en-GB'), /^Europe\/Berlin \((CET|GMT\+1)\)$/);
  assert.match(zoneLabel('Europe/Berlin', utc('2031-07-07T08:00:00.000Z'), 'en-GB'), /^Europe\/Berlin \((CEST|GMT\+2)\)$/);
  assert.equal(zoneLabel('UTC', Date.now(), 'en-GB'), 'UTC');
});

test('"09:00–17:00 on weekdays" across the DST change gives 09:00 Berlin time on both sides', () => {
  const plan = expandPattern({
    fromDay: '2031-03-27', toDay: '2031-04-01', weekdays: [1, 2, 3, 4, 5],
    dayStart: '09:00', dayEnd: '17:00', slotMinutes: 30, breaks: [],
  }, 'Europe/Berlin');
  assert.equal(plan.error, undefined);
  assert.deepEqual(plan.days, ['2031-03-27', '2031-03-28', '2031-03-31', '2031-04-01']);
  assert.equal(plan.slots.length, 4 * 16);
  const firstOfDay = plan.days.map((d) => plan.slots.find((s) => s.day === d));
  assert.deepEqual(firstOfDay.map((s) => isoOf(s.start)),
    ['2031-03-27T08:00:00.000Z', '2031-03-28T08:00:00.000Z', '2031-03-31T07:00:00.000Z', '2031-04-01T07:00:00.000Z']);
  for (const s of plan.slots) {
    const w = wallClock(s.start, 'Europe/Berlin');
    assert.ok(w.hour >= 9 && w.hour < 17, `${isoOf(s.start)} is ${w.hour}:${w.minute} in Berlin`);
    assert.equal(s.end - s.start, 30 * 60_000);
  }
});

test('breaks are left out and a slot that would cross a break starts after it', () => {
  const plan = expandPattern({
    fromDay: '2031-01-06', toDay: '2031-01-06', weekdays: [1], dayStart: '09:00', dayEnd: '12:00',
    slotMinutes: 45, breaks: [{ start: '10:00', end: '10:30' }],
  }, 'UTC');
  assert.deepEqual(plan.slots.map((s) => s.clock), ['09:00', '10:30', '11:15']);
});

test('patterns in plain words refuse what makes no sense', () => {
  const base = { fromDay: '2031-01-06', toDay: '2031-01-10', weekdays: [1], dayStart: '09:00', dayEnd: '17:00', slotMinutes: 30, breaks: [] };
  assert.match(expandPattern({ ...base, toDay: '2031-01-01' }, 'UTC').error, /before the first day/);
  assert.match(expandPattern({ ...base, dayEnd: '08:00' }, 'UTC').error, /end after it starts/);
  assert.match(expandPattern({ ...base, weekdays: [] }, 'UTC').error, /at least one weekday/);
  assert.match(expandPattern({ ...base, slotMinutes: 0 }, 'UTC').error, /5 minutes/);
  assert.match(expandPattern({ ...base, toDay: '2033-01-10' }, 'UTC').error, /at most 366 days/);
});

test('overlaps names the existing slot each planned slot collides with, ignoring CLOSED ones', () => {
  const at = (h, m = 0) => Date.UTC(2031, 0, 6, h, m);
  const existing = [
    { id: 1, start: at(9), end: at(9, 30), status: 'AVAILABLE' },
    { id: 2, start: at(10), end: at(10, 30), status: 'CLOSED' },
    { id: 3, start: at(11), end: at(12), status: 'BOOKED' },
  ];
  const planned = [at(9, 15), at(10), at(11, 30), at(12)].map((s) => ({ start: s, end: s + 30 * 60_000 }));
  const found = overlaps(planned, existing);
  assert.deepEqual(found.map((c) => [c.planned.start, c.existing.id]), [[at(9, 15), 1], [at(11, 30), 3]]);
});
