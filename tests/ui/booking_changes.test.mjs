// Changes of plan in Debian's chromium against a real slotd: the waitlist on a full day and
// the offer it brings, moving a booking to another time, and the calendar file.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  Slotd, launchBrowser, newContext, screenshot, assertNoConsoleErrors, eventually, utcDay, halfHours,
  HOUR, PHONE, assertNoHorizontalScroll, assertLabelled,
} from './harness.mjs';

const CONFLICT = /status of 409/;
let slotd;
let browser;

before(async () => {
  [slotd, browser] = await Promise.all([new Slotd().start(), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await slotd?.cleanup();
});

// A doctor of clinic 1 (UTC) with `count` half-hour slots from 09:00 UTC, `days` days ahead.
async function doctorWithSlots(name, count, days = 1) {
  const doctor = await slotd.addDoctor(name, 'General Practice');
  const slots = await slotd.addSlots(doctor.id, halfHours(utcDay(days) + 9 * HOUR, count));
  return { doctor, slots };
}

const slotButton = (page, id) => page.locator(`#slots button[data-slot-id="${id}"]`);
const statusBadge = (page, status) => page.locator(`#booking-status [data-status="${status}"]`);

// The text of the .ics the booking page's calendar link downloads.
async function downloadCalendar(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#calendar-link')]);
  assert.match(download.suggestedFilename(), /^appointment-\d+\.ics$/);
  return fs.readFileSync(await download.path(), 'utf8');
}

test('a patient joins the waitlist on a full day, sees the time that frees up held for them at once, and confirms it', async () => {
  const { doctor, slots } = await doctorWithSlots('Dr. Wait Listed', 2);
  const taken = [];
  for (const s of slots) taken.push(await slotd.book(s.id, `Early ${s.id}`));
  await slotd.expect(200, 'POST', `/booking/${taken[0].id}/confirm`, { token: taken[0].token });

  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/?doctor=${doctor.id}`);
  await page.locator('#live[data-state="live"]').waitFor();
  await page.locator('#days button[data-open="0"][aria-pressed="true"]').waitFor();
  await page.locator('#waitlist-join').filter({ hasText: 'This day is full' }).waitFor();
  await page.click('#waitlist-open');
  await page.locator('#waitlist-summary').filter({ hasText: 'Dr. Wait Listed' }).waitFor();
  await assertLabelled(page);
  await page.click('#waitlist-submit');  // no name yet
  await page.locator('#waitlist-error').filter({ hasText: 'Please enter your name' }).waitFor();
  await page.fill('#waitlist-name', 'Wanda Waiting');
  await screenshot(page, 'waitlist-join-dialog');
  await page.click('#waitlist-submit');
  await page.locator('#waitlist-status[data-status="WAITING"]').waitFor();
  await screenshot(page, 'waitlist-waiting');

  // The server has the entry for the clinic's whole day, in the patient's name.
  const entries = await page.evaluate(() => JSON.parse(localStorage.getItem('slotd.waitlist')));
  const [entry] = Object.values(entries);
  const view = await slotd.expect(200, 'GET', `/waitlist/${entry.id}`, { headers: { 'X-Waitlist-Token': entry.token } });
  assert.deepEqual([view.status, view.patientName, view.from, view.to],
    ['WAITING', 'Wanda Waiting', new Date(utcDay(1)).toISOString(), new Date(utcDay(2)).toISOString()]);

  // Someone else cancels: the freed time is held for the waiting patient, and the page says so.
  await slotd.expect(200, 'POST', `/booking/${taken[1].id}/cancel`, { admin: true });
  const offer = page.locator('#waitlist-offer[data-status="PENDING"]');
  await offer.filter({ hasText: 'A time came free for you' }).filter({ hasText: '09:30–10:00' }).waitFor();
  await slotButton(page, slots[1].id).and(page.locator('[data-mine="hold"]')).waitFor();
  await screenshot(page, 'waitlist-offer');
  const held = await slotd.expect(200, 'GET', `/waitlist/${entry.id}`, { admin: true });
  assert.equal(held.offer.slotId, slots[1].id);

  await page.click('#waitlist-offer-link');
  await page.waitForURL(new RegExp(`/b/${held.offer.bookingId}$`));
  await statusBadge(page, 'PENDING').waitFor();
  await page.locator('#patient').filter({ hasText: 'Wanda Waiting' }).waitFor();
  await page.click('#confirm');
  await statusBadge(page, 'CONFIRMED').waitFor();
  assert.equal((await slotd.booking(held.offer.bookingId)).status, 'CONFIRMED');

  // Back on the day: the patient's booking, no second offer to join.
  await page.goto(`${slotd.base}/?doctor=${doctor.id}`);
  await page.locator('#waitlist-offer[data-status="CONFIRMED"]').filter({ hasText: 'You got a time' }).waitFor();
  assertNoConsoleErrors(context);
  await context.close();
});

test('a patient who leaves the waitlist gets no offer, and a day with free times offers no waitlist', async () => {
  const { doctor, slots } = await doctorWithSlots('Dr. Leave Early', 1, 2);
  const other = await slotd.book(slots[0].id, 'Someone Else');
  const context = await newContext(browser, PHONE);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/?doctor=${doctor.id}`);
  await page.click('#waitlist-open');
  await page.fill('#waitlist-name', 'Leo Leaving');
  await page.click('#waitlist-submit');
  await page.locator('#waitlist-status[data-status="WAITING"]').waitFor();
  await assertNoHorizontalScroll(page);
  await page.click('#waitlist-leave');
  await page.locator('#waitlist-join').waitFor();
  await slotd.expect(200, 'POST', `/booking/${other.id}/cancel`, { admin: true });
  await slotButton(page, slots[0].id).and(page.locator('[data-status="AVAILABLE"]')).waitFor();
  assert.equal(await page.locator('#waitlist > *').count(), 0, 'a day with a free time shows no waitlist');
  assert.equal((await slotd.request('GET', `/slots/${doctor.id}`)).json[0].status, 'AVAILABLE', 'nobody was offered it');
  assertNoConsoleErrors(context);
  await context.close();
});

test('the booking page moves a booking to another time in one step and its calendar file follows the move', async () => {
  const { doctor, slots } = await doctorWithSlots('Dr. Move Around', 4, 3);
  const b = await slotd.book(slots[0].id, 'Mia Mover');
  const context = await newContext(browser, { allow: [CONFLICT] });
  const page = await context.newPage();
  await page.goto(`${slotd.base}/b/${b.id}#token=${b.token}`);
  await statusBadge(page, 'PENDING').waitFor();
  assert.equal(await page.locator('#calendar-link').count(), 0, 'no calendar file for a hold');
  await page.click('#confirm');
  await statusBadge(page, 'CONFIRMED').waitFor();

  const first = await downloadCalendar(page);
  assert.match(first, /^BEGIN:VCALENDAR\r\n/);
  assert.match(first, /\r\nSTATUS:CONFIRMED\r\n/);
  assert.match(first, /\r\nSEQUENCE:0\r\n/);
  assert.match(first, /\r\nDTSTART;TZID=UTC:\d{8}T090000\r\n/);
  const uid = /\r\nUID:([^\r]+)\r\n/.exec(first)[1];

  // Another patient takes slot 2 while this one looks at the list: the move is refused,
  // nothing changes, and the list comes back without it.
  await page.click('#move');
  await page.locator(`#move-slot option[value="${slots[2].id}"]`).waitFor({ state: 'attached' });
  await assertLabelled(page);
  await screenshot(page, 'booking-move-dialog');
  await page.selectOption('#move-slot', String(slots[2].id));
  await slotd.book(slots[2].id, 'Quick Other');
  await page.click('#move-submit');
  await page.locator('#move-error').filter({ hasText: 'That time was just taken' }).waitFor();
  await eventually(async () => (await page.locator(`#move-slot option[value="${slots[2].id}"]`).count()) === 0,
    'the taken time leaves the list');
  assert.equal((await slotd.booking(b.id)).slotId, slots[0].id);

  await page.selectOption('#move-slot', String(slots[3].id));
  await page.click('#move-submit');
  await page.locator('#when').filter({ hasText: '10:30–11:00' }).waitFor();
  await statusBadge(page, 'CONFIRMED').waitFor();
  const moved = await slotd.booking(b.id);
  assert.deepEqual([moved.slotId, moved.status], [slots[3].id, 'CONFIRMED']);
  const statuses = (await slotd.request('GET', `/slots/${doctor.id}`)).json.map((s) => s.status);
  assert.deepEqual(statuses, ['AVAILABLE', 'AVAILABLE', 'HELD', 'BOOKED']);
  await screenshot(page, 'booking-moved');

  const second = await downloadCalendar(page);
  assert.match(second, /\r\nSEQUENCE:1\r\n/);
  assert.match(second, /\r\nDTSTART;TZID=UTC:\d{8}T103000\r\n/);
  assert.equal(/\r\nUID:([^\r]+)\r\n/.exec(second)[1], uid, 'the same event, updated');

  // Cancelled: the file now tells the calendar to drop the appointment.
  await page.click('#cancel');
  await page.click('#cancel-confirm');
  await statusBadge(page, 'CANCELLED').waitFor();
  await page.locator('#calendar-link').filter({ hasText: 'Remove from your calendar' }).waitFor();
  const cancelled = await downloadCalendar(page);
  assert.match(cancelled, /\r\nSTATUS:CANCELLED\r\n/);
  assert.match(cancelled, /\r\nSEQUENCE:2\r\n/);
  assertNoConsoleErrors(context);
  await context.close();
});

test('a move made elsewhere shows on an open booking page at once', async () => {
  const { slots } = await doctorWithSlots('Dr. Elsewhere', 3, 4);
  const b = await slotd.book(slots[0].id, 'Otto Open');
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/b/${b.id}#token=${b.token}`);
  await statusBadge(page, 'PENDING').waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  await page.locator('#when').filter({ hasText: '09:00–09:30' }).waitFor();
  await slotd.expect(200, 'POST', `/booking/${b.id}/reschedule`, { admin: true, body: { slotId: slots[2].id } });
  await page.locator('#when').filter({ hasText: '10:00–10:30' }).waitFor();
  await statusBadge(page, 'PENDING').waitFor();
  assertNoConsoleErrors(context);
  await context.close();
});
