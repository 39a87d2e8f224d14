// How slotd serves the web UI over HTTP (no browser): pages, caching headers, 304s, HEAD,
// --web-dir, the public clinic list, and what `slotd` prints at start.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Slotd } from './harness.mjs';

let slotd;
before(async () => { slotd = await new Slotd().start(); });
after(async () => { await slotd?.cleanup(); });

const get = (p, headers) => slotd.request('GET', p, { headers });

test('GET / serves the patient page as HTML that the browser must revalidate on every visit', async () => {
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  assert.match(r.headers.get('etag'), /^"[0-9a-f]{32}"$/);
  assert.match(r.text, /<title>Book an appointment/);
  assert.match(r.text, /src="\/assets\/[0-9a-f]{12}\/js\/patient\.js"/, 'built-in pages load versioned assets');
});

test('a request with the page\'s ETag in If-None-Match gets 304 without a body', async () => {
  const first = await get('/');
  const etag = first.headers.get('etag');
  const again = await get('/', { 'If-None-Match': etag });
  assert.equal(again.status, 304);
  assert.equal(again.text, '');
  assert.equal(again.headers.get('etag'), etag);
  assert.equal(again.headers.get('cache-control'), 'no-cache');
  const listed = await get('/', { 'If-None-Match': `"nope", W/${etag}` });
  assert.equal(listed.status, 304, 'a weak or listed match counts for GET');
  const other = await get('/', { 'If-None-Match': '"0000"' });
  assert.equal(other.status, 200);
  assert.equal(other.text, first.text);
});

test('versioned assets may be cached for a year; unversioned ones are revalidated', async () => {
  const page = await get('/');
  const version = /\/assets\/([0-9a-f]{12})\//.exec(page.text)[1];
  const versioned = await get(`/assets/${version}/js/patient.js`);
  assert.equal(versioned.status, 200);
  assert.equal(versioned.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(versioned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.match(versioned.headers.get('etag'), /^"[0-9a-f]{32}"$/);
  const plain = await get('/assets/js/patient.js');
  assert.equal(plain.headers.get('cache-control'), 'no-cache');
  assert.equal(plain.text, versioned.text);
  assert.equal(plain.headers.get('etag'), versioned.headers.get('etag'));
  const css = await get(`/assets/${version}/css/app.css`);
  assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
  const chart = await get(`/assets/${version}/vendor/chart.min.js`);
  assert.equal(chart.status, 200, 'Debian\'s Chart.js is built in');
  assert.match(chart.text, /Chart\.js v3/);
});

test('every module and stylesheet the pages load is served', async () => {
  const seen = new Set();
  const queue = [];
  for (const p of ['/', '/admin', '/admin/dashboard', '/b/1']) {
    const r = await get(p);
    assert.equal(r.status, 200, p);
    for (const m of r.text.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) queue.push(m[1]);
  }
  while (queue.length) {
    const url = queue.shift();
    if (seen.has(url)) continue;
    seen.add(url);
    const r = await get(url);
    assert.equal(r.status, 200, `${url} → ${r.status}`);
    if (url.endsWith('.js') && !url.includes('/vendor/')) {
      for (const m of r.text.matchAll(/(?:import|from)\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        queue.push(new URL(m[1], `http://x${url}`).pathname);
      }
    }
  }
  assert.ok(seen.size >= 12, `only ${seen.size} assets found`);
});

test('HEAD answers with the GET\'s headers and no body', async () => {
  const got = await get('/admin');
  const head = await slotd.request('HEAD', '/admin');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(got.text)));
  assert.equal(head.headers.get('etag'), got.headers.get('etag'));
});

test('/admin, /admin/dashboard and /b/<id> serve their pages; other paths stay JSON 404s', async () => {
  assert.match((await get('/admin')).text, /<title>Admin/);
  assert.match((await get('/admin/dashboard')).text, /<title>Dashboard/);
  assert.match((await get('/b/42')).text, /<title>Your booking/);
  for (const p of ['/b/x', '/b/', '/nope', '/assets/../pages/index.html', '/assets/.hidden', '/assets/js/missing.js']) {
    const r = await get(p);
    assert.equal(r.status, 404, p);
    assert.equal(r.json?.error?.code, 'not_found', p);
  }
  const post = await slotd.request('POST', '/admin');
  assert.equal(post.status, 404, 'pages answer GET and HEAD only');
});

test('GET /clinics is public (a patient picks a clinic); POST /clinics still needs the admin token', async () => {
  const list = await get('/clinics');
  assert.equal(list.status, 200);
  assert.equal(list.json[0].id, 1);
  assert.equal(typeof list.json[0].name, 'string');
  const post = await slotd.request('POST', '/clinics', { body: { name: 'Sneaky' } });
  assert.equal(post.status, 401);
});

test('slotd prints the patient and admin page URLs and where the token is, never the token itself', async () => {
  const own = new Slotd({ adminToken: null });
  try {
    await own.start();
    const token = fs.readFileSync(path.join(own.dataDir, 'admin-token'), 'utf8').trim();
    assert.match(own.output, new RegExp(`patient page: http://127\\.0\\.0\\.1:${own.port}/\\n`));
    assert.match(own.output, new RegExp(`admin page: +http://127\\.0\\.0\\.1:${own.port}/admin\\n`));
    assert.ok(own.output.includes(`admin token: in ${own.dataDir}/admin-token\n`), own.output);
    assert.ok(!own.output.includes(token), 'the admin token must not be printed');
  } finally {
    await own.cleanup();
  }
});

test('--web-dir serves the folder\'s files first, without long caching, and the built-in copy for the rest', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slotd-web-dir-'));
  fs.mkdirSync(path.join(dir, 'pages'));
  fs.mkdirSync(path.join(dir, 'assets', 'css'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'pages', 'index.html'), '<!doctype html><title>work in progress</title>');
  fs.writeFileSync(path.join(dir, 'assets', 'css', 'app.css'), 'body{}');
  const own = new Slotd({ extraArgs: ['--web-dir', dir] });
  try {
    await own.start();
    const page = await own.request('GET', '/');
    assert.equal(page.text, '<!doctype html><title>work in progress</title>');
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    const etag = page.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]+"$/);
    assert.equal((await own.request('GET', '/', { headers: { 'If-None-Match': etag } })).status, 304);
    fs.writeFileSync(path.join(dir, 'pages', 'index.html'), '<!doctype html><title>edited</title>');
    const edited = await own.request('GET', '/', { headers: { 'If-None-Match': etag } });
    assert.equal(edited.status, 200, 'an edited file has a new ETag');
    assert.equal(edited.text, '<!doctype html><title>edited</title>');
    const version = /\/assets\/([0-9a-f]{12})\//.exec((await slotd.request('GET', '/')).text)[1];
    const css = await own.request('GET', `/assets/${version}/css/app.css`);
    assert.equal(css.text, 'body{}');
    assert.equal(css.headers.get('cache-control'), 'no-cache', 'files from a folder may change at any time');
    const builtIn = await own.request('GET', '/assets/js/patient.js');
    assert.equal(builtIn.status, 200, 'what the folder lacks comes from the built-in copy');
    assert.equal((await own.request('GET', '/assets/../pages/index.html')).status, 404);
  } finally {
    await own.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const bad = new Slotd({ extraArgs: ['--web-dir', path.join(dir, 'missing')] });
  await assert.rejects(bad.start(), /exited with 2/, 'a --web-dir that is not a folder is refused at start');
  fs.rmSync(bad.dataDir, { recursive: true, force: true });
});
