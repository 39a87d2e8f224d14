// The patient's side in Debian's chromium against a real slotd: finding a doctor, holding
// and confirming a slot, races, refusals, expiry, reloads, reconnects, phone width.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  Slotd, launchBrowser, newContext, screenshot, assertNoConsoleErrors, eventually, utcDay, halfHours,
  HOUR, PHONE, assertNoHorizontalScroll, assertLabelled,
} from './harness.mjs';
import { zonedToUtc } from '../../web/assets/js/time.js';

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

// A doctor of clinic 1 with `count` half-hour slots from 09:00 UTC tomorrow.
async function doctorWithSlots(server, name, count = 8, specialty = 'General Practice') {
  const doctor = await server.addDoctor(name, specialty);
  const slots = await server.addSlots(doctor.id, halfHours(utcDay(1) + 9 * HOUR, count));
  return { doctor, slots };
}

async function openDoctor(page, server, doctorId) {
  await page.goto(`${server.base}/?doctor=${doctorId}`);
  await page.locator('#slots button.slot').first().waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
}

const slotButton = (page, id) => page.locator(`#slots button[data-slot-id="${id}"]`);

async function holdViaDialog(page, slotId, name) {
  await slotButton(page, slotId).click();
  await page.fill('#patient-name', name);
  await page.click('#book-submit');
}

async function bookingIdOf(page) {
  await page.waitForURL(/\/b\/\d+$/);
  return Number(new URL(page.url()).pathname.split('/')[2]);
}

const statusBadge = (page, status) => page.locator(`#booking-status [data-status="${status}"]`);

test('a patient finds a doctor at once, holds a slot with their name and confirms it', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Ada Okafor', 8);
  // The browser is in Los Angeles; the clinic runs on UTC: times show at the clinic's clock.
  const context = await newContext(browser, { timezoneId: 'America/Los_Angeles' });
  const page = await context.newPage();
  await page.goto(`${slotd.base}/`);
  const card = page.locator(`.doctor-card[data-doctor-id="${doctor.id}"]`);
  await card.getByText('General Practice').waitFor();
  await card.locator('.next').filter({ hasText: /^Next: .*09:00$/ }).waitFor();
  await screenshot(page, 'patient-doctors');

  await card.getByRole('link', { name: 'Dr. Ada Okafor' }).click();
  await page.waitForURL(new RegExp(`\\?doctor=${doctor.id}`));
  await slotButton(page, slots[2].id).waitFor();
  assert.equal(await slotButton(page, slots[2].id).locator('.t').textContent(), '10:00');
  await page.locator('#zone-note').filter({ hasText: 'UTC' }).filter({ hasText: 'America/Los_Angeles' }).waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  await assertLabelled(page);
  await screenshot(page, 'patient-slots');

  await slotButton(page, slots[2].id).click();
  await page.fill('#patient-name', 'Ann Patient');
  await page.locator('#book-summary').filter({ hasText: '10:00–10:30' }).waitFor();
  await screenshot(page, 'patient-hold-dialog');
  await page.click('#book-submit');
  const id = await bookingIdOf(page);
  await statusBadge(page, 'PENDING').waitFor();
  assert.match(await page.locator('#countdown').textContent(), /^1[45]:\d\d$/); // a 900 s hold
  await page.locator('#patient').filter({ hasText: 'Ann Patient' }).waitFor();
  await page.locator('#when').filter({ hasText: '10:00–10:30' }).waitFor();
  const held = await slotd.booking(id);
  assert.deepEqual([held.status, held.slotId, held.patientName], ['PENDING', slots[2].id, 'Ann Patient']);
  await assertLabelled(page);
  await screenshot(page, 'booking-pending');

  await page.click('#confirm');
  await statusBadge(page, 'CONFIRMED').waitFor();
  await page.locator('#outcome').filter({ hasText: 'confirmed' }).waitFor();
  assert.equal((await slotd.booking(id)).status, 'CONFIRMED');
  await screenshot(page, 'booking-confirmed');
  assertNoConsoleErrors(context);
  await context.close();
});

test('a doctor created through the API is listed on the next visit, without a rebuild', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/`);
  await page.locator('.doctor-card').first().waitFor();
  assert.equal(await page.getByText('Dr. Newly Added').count(), 0);
  const doctor = await slotd.addDoctor('Dr. Newly Added', 'Neurology');
  await page.reload();
  await page.locator(`.doctor-card[data-doctor-id="${doctor.id}"]`).getByText('Neurology').waitFor();
  await page.selectOption('#f-specialty', 'Neurology');
  await eventually(async () => (await page.locator('.doctor-card').count()) === 1, 'the specialty filter leaves one doctor');
  assert.match(page.url(), /specialty=Neurology/);
  await screenshot(page, 'patient-filtered-by-specialty');
  assertNoConsoleErrors(context);
  await context.close();
});

test('two patients race for one slot: one wins, the other sees the conflict, and the slot greys out live in a third page without moving anything', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Race Condition', 6);
  const target = slots[1].id;
  const contexts = await Promise.all([0, 1, 2].map(() => newContext(browser, { allow: [CONFLICT] })));
  const [a, b, watcher] = await Promise.all(contexts.map((c) => c.newPage()));
  await Promise.all([a, b, watcher].map((p) => openDoctor(p, slotd, doctor.id)));
  // Layout shifts in the watching page from here on (a live update must cause none).
  await watcher.evaluate(() => {
    window.layoutShift = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        window.layoutShift += e.value;
        (window.shiftSources ??= []).push(...e.sources.map((x) => `${x.node?.nodeName}.${x.node?.className ?? ''} "${x.node?.textContent?.slice(0, 30)}" ${JSON.stringify(x.previousRect)} -> ${JSON.stringify(x.currentRect)}`));
      }
    }).observe({ type: 'layout-shift' });
  });
  for (const [page, name] of [[a, 'Alice Race'], [b, 'Bob Race']]) {
    await slotButton(page, target).click();
    await page.fill('#patient-name', name);
  }
  await Promise.all([a.click('#book-submit', { force: true }), b.click('#book-submit', { force: true })]);
  const winner = await eventually(() => [a, b].find((p) => /\/b\/\d+$/.test(p.url())), 'one of the two opens its booking');
  const loser = winner === a ? b : a;
  await loser.locator('#book-error').filter({ hasText: 'this time was just taken' }).waitFor();
  assert.ok(!/\/b\//.test(loser.url()), 'exactly one patient gets the slot');
  await screenshot(loser, 'race-loser-conflict');
  await statusBadge(winner, 'PENDING').waitFor();

  await slotButton(watcher, target).and(watcher.locator('[disabled][data-status="HELD"]')).waitFor();
  assert.equal(await slotButton(watcher, target).locator('.n').textContent(), 'Taken');
  await watcher.locator(`#days button[aria-pressed="true"]`).filter({ hasText: '5 open' }).waitFor();
  assert.equal(await watcher.evaluate(() => window.layoutShift), 0, `a live update must not shift the layout: ${await watcher.evaluate(() => JSON.stringify(window.shiftSources))}`);
  await screenshot(watcher, 'race-watcher-greyed-out');

  await loser.click('#book-cancel');
  await slotButton(loser, target).and(loser.locator('[disabled]')).waitFor();
  const holds = (await slotd.expect(200, 'GET', `/slots/${doctor.id}?status=HELD`)).map((s) => s.id);
  assert.deepEqual(holds, [target]);
  assertNoConsoleErrors(...contexts);
  await Promise.all(contexts.map((c) => c.close()));
});

test('a refused booking (409) is explained in plain words and the list refreshes even without the feed', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Stale View', 4);
  const context = await newContext(browser, { allow: [CONFLICT] });
  const page = await context.newPage();
  let paused = false;
  // The feed is held back, so only the page's own refresh can show what changed.
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => { if (!paused) ws.send(m); });
  });
  await openDoctor(page, slotd, doctor.id);
  paused = true;
  await slotd.book(slots[0].id, 'Somebody Else');
  await slotd.book(slots[3].id, 'Another Patient');
  assert.equal(await slotButton(page, slots[0].id).isDisabled(), false, 'the page cannot know yet');
  await holdViaDialog(page, slots[0].id, 'Late Larry');
  await page.locator('#book-error').filter({ hasText: 'Someone else booked it a moment before you' }).waitFor();
  await slotButton(page, slots[3].id).and(page.locator('[disabled]')).waitFor();
  await screenshot(page, 'patient-409-explained');
  await page.click('#book-cancel');
  assert.equal(await slotButton(page, slots[0].id).isDisabled(), true);
  assert.equal(await slotButton(page, slots[1].id).isDisabled(), false);
  assertNoConsoleErrors(context);
  await context.close();
});

test('a network error on "Hold this time" says so and the retry books once, never leaving a spinner', async () => {
  const { slots, doctor } = await doctorWithSlots(slotd, 'Dr. Flaky Network', 3);
  const context = await newContext(browser, { allow: [/ERR_CONNECTION_REFUSED|ERR_FAILED/] });
  const page = await context.newPage();
  await openDoctor(page, slotd, doctor.id);
  await page.route('**/booking', (route) => route.abort('connectionrefused'));
  await holdViaDialog(page, slots[0].id, 'Nora Network');
  await page.locator('#book-error').filter({ hasText: 'could not reach the booking service' }).waitFor();
  assert.equal(await page.locator('#book-submit').isEnabled(), true);
  assert.equal(await page.locator('#book-submit .spinner').count(), 0);
  await page.unroute('**/booking');
  await page.click('#book-submit');
  const id = await bookingIdOf(page);
  assert.equal((await slotd.booking(id)).patientName, 'Nora Network');
  const held = await slotd.expect(200, 'GET', `/slots/${doctor.id}?status=HELD`);
  assert.equal(held.length, 1);
  await screenshot(page, 'booking-after-network-retry');
  assertNoConsoleErrors(context);
  await context.close();
});

test('a reload keeps the booking page working, and the copied link manages it from another device', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Reload', 2);
  const first = await newContext(browser);
  const page = await first.newPage();
  await openDoctor(page, slotd, doctor.id);
  await holdViaDialog(page, slots[0].id, 'Rita Reload');
  const id = await bookingIdOf(page);
  await statusBadge(page, 'PENDING').waitFor();
  await page.reload();
  await statusBadge(page, 'PENDING').waitFor();
  await page.locator('#patient').filter({ hasText: 'Rita Reload' }).waitFor();
  const link = await page.inputValue('#booking-link');
  assert.match(link, new RegExp(`/b/${id}#token=[0-9a-f]{32}$`));

  const second = await newContext(browser, PHONE);
  const phone = await second.newPage();
  await phone.goto(link);
  await statusBadge(phone, 'PENDING').waitFor();
  await phone.locator('#patient').filter({ hasText: 'Rita Reload' }).waitFor();
  assert.equal(new URL(phone.url()).hash, '', 'the token leaves the address bar');
  await phone.click('#cancel');
  await phone.click('#cancel-confirm');
  await statusBadge(phone, 'CANCELLED').waitFor();
  await statusBadge(page, 'CANCELLED').waitFor(); // the first device follows live
  await screenshot(page, 'booking-cancelled-live');
  await page.reload();
  await statusBadge(page, 'CANCELLED').waitFor();
  assert.equal((await slotd.booking(id)).status, 'CANCELLED');
  assertNoConsoleErrors(first, second);
  await Promise.all([first.close(), second.close()]);
});

test('a patient who books with the keyboard alone gets a confirmed booking', async () => {
  const { doctor } = await doctorWithSlots(slotd, 'Dr. Keyboard Only', 3, 'Keyboard Medicine');
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/?specialty=Keyboard+Medicine`);
  await page.locator(`.doctor-card[data-doctor-id="${doctor.id}"]`).waitFor();
  const focusOn = async (selector, what) => {
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    }
    assert.fail(`Tab never reached ${what}`);
  };
  await focusOn(`.doctor-card[data-doctor-id="${doctor.id}"] a`, 'the doctor');
  await page.keyboard.press('Enter');
  await page.locator('#slots button.slot').first().waitFor();
  await focusOn('#slots button.slot:not([disabled])', 'a free slot');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'patient-name', 'the dialog puts focus on the name');
  await page.keyboard.type('Kim Keys');
  await page.keyboard.press('Enter');
  await bookingIdOf(page);
  await statusBadge(page, 'PENDING').waitFor();
  await focusOn('#confirm', 'the Confirm button');
  await page.keyboard.press('Enter');
  await statusBadge(page, 'CONFIRMED').waitFor();
  await screenshot(page, 'booking-confirmed-by-keyboard');
  assertNoConsoleErrors(context);
  await context.close();
});

test('when slotd restarts the page says it is reconnecting, resubscribes with fromSeq and is live again', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Restart', 3);
  const context = await newContext(browser, { allow: [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/] });
  const page = await context.newPage();
  const subscribes = [];
  let lastSeen = 0; // the newest seq the page received: its snapshot's or an event's
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => subscribes.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => {
      const m = JSON.parse(f.payload);
      lastSeen = Math.max(lastSeen, m.asOfSeq ?? m.seq ?? 0);
    });
  });
  await openDoctor(page, slotd, doctor.id);
  await slotd.stop();
  const seenBeforeRestart = lastSeen;
  await page.locator('#live[data-state="reconnecting"]').filter({ hasText: 'Reconnecting' }).waitFor();
  await screenshot(page, 'patient-reconnecting');
  await slotd.start();
  await page.locator('#live[data-state="live"]').waitFor({ timeout: 15000 });
  await eventually(() => subscribes.length >= 2, 'a second subscribe after the restart');
  assert.equal(subscribes[0].fromSeq, undefined, 'the first subscription asks for a snapshot');
  assert.ok(seenBeforeRestart > 0);
  assert.deepEqual(subscribes.at(-1), { op: 'subscribe', doctorIds: [doctor.id], fromSeq: seenBeforeRestart + 1 });
  await slotd.book(slots[1].id, 'After Restart');
  await slotButton(page, slots[1].id).and(page.locator('[disabled]')).waitFor();
  await screenshot(page, 'patient-live-after-restart');
  assertNoConsoleErrors(context);
  await context.close();
});

test('events the page missed while its connection was down arrive after it resubscribes with fromSeq', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Lost Messages', 3);
  const context = await newContext(browser);
  const page = await context.newPage();
  let dropping = false;
  let dropped = 0;
  const connections = [];
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    connections.push({ ws, server });
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      if (dropping) dropped += 1;
      else ws.send(m);
    });
  });
  await openDoctor(page, slotd, doctor.id);
  dropping = true;
  await slotd.book(slots[2].id, 'Missed Event');
  await eventually(() => dropped >= 1, 'the hold event reached the (dropped) connection');
  assert.equal(await slotButton(page, slots[2].id).isDisabled(), false, 'the page has not seen it');
  dropping = false;
  connections[0].server.close();
  connections[0].ws.close({ code: 1012, reason: 'test: connection lost' });
  await slotButton(page, slots[2].id).and(page.locator('[disabled][data-status="HELD"]')).waitFor();
  assert.equal(connections.length, 2);
  await screenshot(page, 'patient-caught-up-with-fromseq');
  assertNoConsoleErrors(context);
  await context.close();
});

test('a PENDING booking turns FAILED on screen when its short hold runs out, and the slot is free again', async () => {
  const short = await new Slotd({ holdTtl: 6 }).start();
  try {
    const { doctor, slots } = await doctorWithSlots(short, 'Dr. Short Hold', 2);
    const context = await newContext(browser);
    const page = await context.newPage();
    await openDoctor(page, short, doctor.id);
    await holdViaDialog(page, slots[0].id, 'Slow Sam');
    const id = await bookingIdOf(page);
    await statusBadge(page, 'PENDING').waitFor();
    await statusBadge(page, 'FAILED').waitFor({ timeout: 20000 });
    await page.locator('#outcome').filter({ hasText: 'The hold ran out' }).waitFor();
    assert.equal(await page.locator('#confirm').count(), 0, 'nothing left to confirm');
    await screenshot(page, 'booking-failed');
    assert.equal((await short.booking(id)).status, 'FAILED');
    assert.equal((await short.expect(200, 'GET', `/slots/${doctor.id}?status=AVAILABLE`)).length, 2);
    assertNoConsoleErrors(context);
    await context.close();
  } finally {
    await short.cleanup();
  }
});

test('a patient over the hold cap (429) is told how many holds are open and where they are', async () => {
  const capped = await new Slotd({ extraArgs: ['--max-holds-per-client', '1'] }).start();
  try {
    const { doctor, slots } = await doctorWithSlots(capped, 'Dr. One Hold', 3);
    const context = await newContext(browser, { allow: [/status of 429/] });
    const page = await context.newPage();
    await openDoctor(page, capped, doctor.id);
    await holdViaDialog(page, slots[0].id, 'Holly Holds');
    const first = await bookingIdOf(page);
    await statusBadge(page, 'PENDING').waitFor();
    await openDoctor(page, capped, doctor.id);
    await holdViaDialog(page, slots[1].id, 'Holly Holds');
    await page.locator('#book-error').filter({ hasText: 'You already have 1 time on hold' }).waitFor();
    assert.equal(await page.locator(`#book-error a[href="/b/${first}"]`).count(), 1, 'the open hold is linked');
    await screenshot(page, 'patient-429-holds');
    assertNoConsoleErrors(context);
    await context.close();
  } finally {
    await capped.cleanup();
  }
});

test('at phone width (390 px) the patient can find a doctor, book and confirm without sideways scrolling', async () => {
  const { doctor, slots } = await doctorWithSlots(slotd, 'Dr. Pocket Phone', 12);
  const context = await newContext(browser, PHONE);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/`);
  await page.locator(`.doctor-card[data-doctor-id="${doctor.id}"]`).waitFor();
  await assertNoHorizontalScroll(page);
  await screenshot(page, 'phone-patient-doctors');
  await page.locator(`.doctor-card[data-doctor-id="${doctor.id}"] a`).tap();
  await slotButton(page, slots[4].id).waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  await assertNoHorizontalScroll(page);
  await screenshot(page, 'phone-patient-slots');
  await slotButton(page, slots[4].id).tap();
  await page.fill('#patient-name', 'Pat Phone');
  await page.locator('#book-submit').tap();
  await bookingIdOf(page);
  await statusBadge(page, 'PENDING').waitFor();
  await assertNoHorizontalScroll(page);
  await screenshot(page, 'phone-booking-pending');
  await page.locator('#confirm').tap();
  await statusBadge(page, 'CONFIRMED').waitFor();
  await screenshot(page, 'phone-booking-confirmed');
  assertNoConsoleErrors(context);
  await context.close();
});

test('a patient abroad sees the appointment at the clinic\'s clock, with the clinic\'s zone named', async () => {
  const clinic = await slotd.addClinic('Spree Praxis', 'Europe/Berlin');
  const listed = (await slotd.expect(200, 'GET', '/clinics')).find((c) => c.id === clinic.id);
  assert.equal(listed.timeZone, 'Europe/Berlin', 'GET /clinics must return the clinic\'s timeZone');
  const doctor = await slotd.addDoctor('Dr. Klara Berg', 'Dermatology', clinic.id);
  const day = new Date(utcDay(2));
  const nineBerlin = zonedToUtc(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), 9, 0, 'Europe/Berlin');
  const [slot] = await slotd.addSlots(doctor.id, halfHours(nineBerlin, 1));
  const context = await newContext(browser, { timezoneId: 'Asia/Tokyo' });
  const page = await context.newPage();
  await openDoctor(page, slotd, doctor.id);
  assert.equal(await slotButton(page, slot.id).locator('.t').textContent(), '09:00');
  await page.locator('#zone-note').filter({ hasText: 'Europe/Berlin' }).filter({ hasText: 'Asia/Tokyo' }).waitFor();
  await holdViaDialog(page, slot.id, 'Tomo Abroad');
  await bookingIdOf(page);
  await page.locator('#when').filter({ hasText: '09:00–09:30' }).filter({ hasText: 'Europe/Berlin' }).waitFor();
  await screenshot(page, 'booking-abroad-clinic-time');
  assertNoConsoleErrors(context);
  await context.close();
});
