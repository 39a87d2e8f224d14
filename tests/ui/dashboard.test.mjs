// The dashboard (/admin/dashboard) in Debian's chromium against a real slotd of its own:
// its numbers follow bookings live, without reloads.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  Slotd, launchBrowser, newContext, screenshot, assertNoConsoleErrors, utcDay, halfHours, HOUR, PHONE,
  signIn, assertNoHorizontalScroll,
} from './harness.mjs';

let slotd;
let browser;
let doctor;
let slots;

before(async () => {
  [slotd, browser] = await Promise.all([new Slotd().start(), launchBrowser()]);
  doctor = await slotd.addDoctor('Dr. Metrics', 'Cardiology');
  slots = await slotd.addSlots(doctor.id, halfHours(utcDay(1) + 9 * HOUR, 4));
});
after(async () => {
  await browser?.close();
  await slotd?.cleanup();
});

const tile = (page, key, text) => page.locator(`#kpi-${key}`).filter({ hasText: new RegExp(`^${text}$`) });
// A cell of a chart's table (inside a closed <details>: present, not visible).
const cell = (page, table, row, text) => page.locator(`#table-${table} tr`).filter({ hasText: row })
  .locator('td').filter({ hasText: new RegExp(`^${text}$`) }).waitFor({ state: 'attached' });

test('the dashboard\'s numbers move when bookings happen, without a reload', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, slotd.base);
  await page.goto(`${slotd.base}/admin/dashboard`);
  await tile(page, 'pending', '0').waitFor();
  await tile(page, 'fill', '0.0%').waitFor();
  await page.locator('#live[data-state="live"]').waitFor();
  await page.evaluate(() => { window.sameDocument = true; });

  const a = await slotd.book(slots[0].id, 'Dee Dashboard');
  await tile(page, 'pending', '1').waitFor();
  await tile(page, 'fill', '25.0%').waitFor();
  await cell(page, 'status', 'PENDING', '1');
  await page.locator('#activity li').first().filter({ hasText: `Booking #${a.id} held with Dr. Metrics` }).waitFor();

  await slotd.expect(200, 'POST', `/booking/${a.id}/confirm`, { token: a.token });
  const b = await slotd.book(slots[1].id, 'Eve Expiring');
  await slotd.expect(200, 'POST', `/booking/${b.id}/cancel`, { token: b.token });
  await tile(page, 'conversion', '100.0%').waitFor();
  await cell(page, 'status', 'CONFIRMED', '1');
  await cell(page, 'status', 'CANCELLED', '1');
  await tile(page, 'pending', '0').waitFor();
  await page.locator('#activity li').first().filter({ hasText: `Booking #${b.id} cancelled` }).waitFor();
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was not reloaded');
  await screenshot(page, 'dashboard');
  assertNoConsoleErrors(context);
  await context.close();
});

test('the dashboard charts bookings per minute, fill rate per doctor and the engine\'s vitals from GET /admin/stats', async () => {
  const context = await newContext(browser);
  const page = await context.newPage();
  await signIn(page, slotd.base);
  await page.goto(`${slotd.base}/admin/dashboard`);
  await page.locator('#live[data-state="live"]').waitFor();
  const before = await slotd.expect(200, 'GET', '/admin/stats', { admin: true });
  const c = await slotd.book(slots[2].id, 'Fay Fill');
  await tile(page, 'pending', String(before.bookings.pending + 1)).waitFor();
  const doctorSlots = await slotd.expect(200, 'GET', `/slots/${doctor.id}`);
  const taken = doctorSlots.filter((s) => s.status === 'HELD' || s.status === 'BOOKED').length;
  const open = doctorSlots.filter((s) => s.status !== 'CLOSED').length;
  await cell(page, 'doctors', 'Dr. Metrics', `${((100 * taken) / open).toFixed(1)}%`);
  // Every booking of this run was held within the last minutes.
  const minutes = await page.locator('#table-minutes tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.cells].slice(1).map((td) => Number(td.textContent))));
  assert.equal(minutes.reduce((n, r) => n + r[0], 0), before.bookings.total + 1, 'holds per minute add up to every booking');
  await slotd.expect(200, 'POST', `/booking/${c.id}/confirm`, { token: c.token });
  await page.locator('#kpi-hold').filter({ hasText: /\d/ }).waitFor();
  await page.locator('#kpi-sync').filter({ hasText: /\d ms$/ }).waitFor();
  await page.locator('#kpi-batch').filter({ hasText: /^\d+\.\d$/ }).waitFor();
  await screenshot(page, 'dashboard-charts');
  assertNoConsoleErrors(context);
  await context.close();
});

test('at phone width (390 px) the dashboard stacks its tiles and charts', async () => {
  const context = await newContext(browser, PHONE);
  const page = await context.newPage();
  await signIn(page, slotd.base);
  await page.goto(`${slotd.base}/admin/dashboard`);
  await page.locator('#kpi-fill').filter({ hasText: '%' }).waitFor();
  await assertNoHorizontalScroll(page);
  await screenshot(page, 'phone-dashboard');
  assertNoConsoleErrors(context);
  await context.close();
});
