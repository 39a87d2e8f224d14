// Shared by the UI suites: a real slotd on a loopback port (its own temp data dir), Debian's
// chromium driven by playwright-core (no browser download), screenshots into a folder, and
// a watch on every page for console errors. Every wait here is bounded in time.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    slotd: { type: 'string' },
    screenshots: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
  strict: false,
});
if (!args.slotd) throw new Error('usage: node <suite>.test.mjs --slotd PATH [--screenshots DIR] [--chromium PATH]');

export const ADMIN_TOKEN = 'ui-test-admin-token-0123456789';
export const SCREENSHOTS = args.screenshots ?? path.join(os.tmpdir(), 'slotd-ui-screenshots');
fs.mkdirSync(SCREENSHOTS, { recursive: true });

// The flags the machine needs (no sandbox as root, no network but loopback, no GPU);
// Playwright adds --headless and a fresh, empty --user-data-dir for every launch.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const live = new Set();
process.on('exit', () => {
  for (const s of live) s.proc?.kill('SIGKILL');
});

export class Slotd {
  // A long hold by default, so no hold of an earlier test expires during a later one.
  constructor({ holdTtl = 900, extraArgs = [], adminToken = ADMIN_TOKEN } = {}) {
    this.holdTtl = holdTtl;
    this.extraArgs = extraArgs;
    this.adminToken = adminToken;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'slotd-ui-data-'));
    this.port = 0;
    this.proc = null;
    this.output = '';
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  // Starts (or restarts on the same port and data dir) and resolves once it listens.
  async start() {
    const argv = ['--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir,
      '--hold-ttl', String(this.holdTtl), '--threads', '2', ...this.extraArgs];
    if (this.adminToken) argv.push('--admin-token', this.adminToken);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLOTD_')));
    const proc = spawn(args.slotd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    live.add(this);
    this.output += `\n===== ${args.slotd} ${argv.join(' ')}\n`;
    const listening = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`slotd did not listen within 15 s:\n${this.output}`)), 15000);
      const onData = (chunk) => {
        this.output += chunk;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(this.output.slice(-4000));
        if (m) {
          clearTimeout(timer);
          this.port = Number(m[1]);
          resolve();
        }
      };
      proc.stdout.setEncoding('utf8').on('data', onData);
      proc.stderr.setEncoding('utf8').on('data', (c) => { this.output += c; });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`slotd exited with ${code} before listening:\n${this.output}`));
      });
    });
    await listening;
    // Answering HTTP means the io threads run, and with them slotd's SIGTERM handler.
    await eventually(async () => {
      try {
        return (await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
      } catch {
        return false;
      }
    }, 'GET /healthz after start', 10000);
    return this;
  }

  // SIGTERM, and slotd must exit 0 within 10 s.
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    const code = await Promise.race([exited, delay(10000).then(() => 'timeout')]);
    live.delete(this);
    if (code === 'timeout') {
      proc.kill('SIGKILL');
      throw new Error(`slotd did not exit within 10 s of SIGTERM:\n${this.output}`);
    }
    assert.equal(code, 0, `slotd must exit 0 on SIGTERM:\n${this.output}`);
  }

  async cleanup() {
    await this.stop();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  async request(method, urlPath, { body, admin = false, token, headers = {} } = {}) {
    const h = { ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (admin) h.Authorization = `Bearer ${this.adminToken}`;
    if (token) h['X-Booking-Token'] = token;
    const response = await fetch(this.base + urlPath, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10000),
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  // The JSON of a request that must answer `status`.
  async expect(status, method, urlPath, options) {
    const r = await this.request(method, urlPath, options);
    assert.equal(r.status, status, `${method} ${urlPath} → ${r.status} ${r.text}`);
    return r.json;
  }

  addClinic(name, timeZone) {
    return this.expect(201, 'POST', '/clinics', { admin: true, body: timeZone ? { name, timeZone } : { name } });
  }
  addDoctor(name, specialty, clinicId = 1) {
    return this.expect(201, 'POST', '/doctors', { admin: true, body: { name, specialty, clinicId } });
  }
  addSlots(doctorId, spans) {
    return this.expect(201, 'POST', '/slots', {
      admin: true, body: { doctorId, slots: spans.map(([s, e]) => ({ start: iso(s), end: iso(e) })) },
    });
  }
  book(slotId, patientName) {
    return this.expect(201, 'POST', '/booking', { body: { slotId, patientName } });
  }
  booking(id) {
    return this.expect(200, 'GET', `/booking/${id}`, { admin: true });
  }
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export function iso(ms) {
  return new Date(ms).toISOString();
}
export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Midnight UTC `days` days from today: test slots live in the near future so that the
// patient page (which shows upcoming times) lists them.
export function utcDay(days) {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + days);
}

// `count` consecutive half-hour slots from `startMs`.
export function halfHours(startMs, count) {
  return Array.from({ length: count }, (_, i) => [startMs + i * 30 * MINUTE, startMs + (i + 1) * 30 * MINUTE]);
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: args.chromium, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

export const PHONE = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };
export const DESKTOP = { viewport: { width: 1280, height: 860 } };

// A browser context whose pages are watched: page errors and console errors fail the
// test unless they match `allow` (e.g. the network error Chromium logs for an expected 409).
export async function newContext(browser, { allow = [], ...options } = {}) {
  const context = await browser.newContext({ locale: 'en-GB', timezoneId: 'UTC', ...DESKTOP, ...options });
  context.setDefaultTimeout(10000);
  const problems = [];
  context.on('page', (page) => watchPage(page, problems, allow));
  context.problems = problems;
  context.allow = allow;
  return context;
}

function watchPage(page, problems, allow) {
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (allow.some((re) => re.test(text))) return;
    problems.push(`console error on ${page.url()}: ${text}`);
  });
}

export function assertNoConsoleErrors(...contexts) {
  const problems = contexts.flatMap((c) => c.problems);
  assert.deepEqual(problems, [], 'pages must log no errors');
}

// Saves a full-page screenshot as SCREENSHOTS/<name>.png (CI keeps the folder).
export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// Polls `probe` until it returns a truthy value, for at most `timeoutMs`.
export async function eventually(probe, message, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`${message} (not within ${timeoutMs} ms; last: ${JSON.stringify(last)})`);
    await delay(50);
  }
}

// Signs in on the admin page (the token form) and waits for the admin navigation.
export async function signIn(page, base, hash = '') {
  await page.goto(`${base}/admin${hash}`);
  await page.fill('#admin-token', ADMIN_TOKEN);
  await page.click('form button[type=submit]');
  await page.locator('#admin-nav').waitFor({ state: 'visible' });
}

// Fails unless nothing on the page is wider than the viewport (no sideways scrolling).
export async function assertNoHorizontalScroll(page) {
  const [scrollWidth, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scrollWidth <= width, `the page is ${scrollWidth}px wide in a ${width}px viewport`);
}

// Every form control has an accessible name and every image an alt text.
export async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('input, select, textarea, button')) {
      if (el.type === 'hidden' || el.closest('[hidden]') || el.closest('dialog:not([open])')) continue;
      const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
        (el.tagName === 'BUTTON' && el.textContent.trim());
      if (!named) out.push(el.outerHTML.slice(0, 120));
    }
    for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push(img.outerHTML.slice(0, 120));
    return out;
  });
  assert.deepEqual(unlabelled, [], 'every control needs a label and every image an alt');
}
