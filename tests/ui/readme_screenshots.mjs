// Regenerates the README's screenshots from `slotd --demo` with a little booking traffic:
//   node tests/ui/readme_screenshots.mjs --slotd build/release/api/slotd --screenshots docs/screenshots
// Not a test: it asserts nothing, it only shows what the pages look like with demo data.
import { Slotd, launchBrowser, newContext, signIn, screenshot, PHONE, delay } from './harness.mjs';

const slotd = await new Slotd({ extraArgs: ['--demo'] }).start();
const browser = await launchBrowser();
try {
  const doctors = await slotd.expect(200, 'GET', '/doctors');
  const now = Date.now();
  // Some holds, confirmations, cancellations and an expiry-free mix on the first doctors.
  let n = 0;
  for (const d of doctors) {
    const open = (await slotd.expect(200, 'GET', `/slots/${d.id}?status=AVAILABLE&from=${new Date(now).toISOString()}`)).slice(0, 40);
    for (const [i, s] of open.entries()) {
      if ((i * 7 + d.id * 3) % 5 > 1) continue;
      const b = await slotd.book(s.id, `Demo Patient ${++n}`);
      if (n % 4 !== 0) await slotd.expect(200, 'POST', `/booking/${b.id}/confirm`, { token: b.token });
      else if (n % 8 === 0) await slotd.expect(200, 'POST', `/booking/${b.id}/cancel`, { token: b.token });
    }
  }
  const context = await newContext(browser);
  const page = await context.newPage();
  await page.goto(`${slotd.base}/`);
  await page.locator('.doctor-card .next:not(.none)').first().waitFor();
  await delay(300);
  await screenshot(page, 'patient-doctors');
  await page.goto(`${slotd.base}/?doctor=${doctors[0].id}`);
  await page.locator('#live[data-state="live"]').waitFor();
  await screenshot(page, 'patient-slots');
  await signIn(page, slotd.base, `#schedule?doctor=${doctors[0].id}`);
  await page.locator('#week .chip').first().waitFor();
  await screenshot(page, 'admin-week');
  await page.goto(`${slotd.base}/admin/dashboard`);
  await page.locator('#kpi-fill').filter({ hasText: '%' }).waitFor();
  // A little traffic while the page is open, for the activity list and the vitals chart.
  const later = (await slotd.expect(200, 'GET', `/slots/${doctors[2].id}?status=AVAILABLE&from=${new Date(now).toISOString()}`)).slice(0, 6);
  for (const [i, s] of later.entries()) {
    const b = await slotd.book(s.id, `Live Patient ${i + 1}`);
    await delay(400);
    if (i % 3 !== 2) await slotd.expect(200, 'POST', `/booking/${b.id}/confirm`, { token: b.token });
    await delay(400);
  }
  await delay(5500); // one more stats sample
  await screenshot(page, 'dashboard');
  const phone = await newContext(browser, PHONE);
  const p = await phone.newPage();
  await p.goto(`${slotd.base}/?doctor=${doctors[1].id}`);
  await p.locator('#live[data-state="live"]').waitFor();
  await screenshot(p, 'phone-patient-slots');
} finally {
  await browser.close();
  await slotd.cleanup();
}
