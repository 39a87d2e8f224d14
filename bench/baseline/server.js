'use strict';
// The "usual" clinic slot-booking app: one Node process, Express, node-postgres with a
// connection pool, PostgreSQL with its default durability (fsync on, synchronous_commit
// on: a 201 is sent only after the COMMIT is flushed to the WAL). The baseline that
// bench/compare_baseline.sh runs next to slotd under the same wrk load.
//
// Config (environment): PORT (3000), HOST (127.0.0.1), DATABASE_URL or the usual
// PGHOST/PGPORT/PGUSER/PGDATABASE, PG_POOL_SIZE (20), HOLD_TTL seconds (120).

const crypto = require('node:crypto');
const express = require('express');
const { Pool } = require('pg');

const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '127.0.0.1';
const HOLD_TTL = Number(process.env.HOLD_TTL || 120);

const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.PG_POOL_SIZE || 20),
});
pool.on('error', (err) => console.error('idle pg client error', err));

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '1mb' }));

function sendError(res, status, code, message) {
  return res.status(status).json({ error: { code, message } });
}

// Ids are JSON integers; a digit string is accepted too (as slotd does).
function parseId(value) {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  if (typeof value === 'string' && /^[1-9][0-9]{0,15}$/.test(value)) return Number(value);
  return null;
}

function parseInstant(value) {
  if (typeof value !== 'string') return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const SLOT_STATUSES = new Set(['AVAILABLE', 'HELD', 'BOOKED', 'CLOSED']);

app.get('/healthz', (req, res) => res.json({ status: 'ok' }));

app.get('/doctors', async (req, res) => {
  let rows;
  if (req.query.clinicId !== undefined) {
    const clinicId = parseId(req.query.clinicId);
    if (clinicId === null) return sendError(res, 400, 'invalid_query', 'clinicId must be an id');
    ({ rows } = await pool.query(
      'SELECT id, name, specialty, clinic_id FROM doctors WHERE clinic_id = $1 ORDER BY id',
      [clinicId]));
  } else {
    ({ rows } = await pool.query('SELECT id, name, specialty, clinic_id FROM doctors ORDER BY id'));
  }
  res.json(rows.map((r) => ({ id: r.id, name: r.name, specialty: r.specialty, clinicId: r.clinic_id })));
});

app.get('/slots/:doctorId', async (req, res) => {
  const doctorId = parseId(req.params.doctorId);
  if (doctorId === null) return sendError(res, 400, 'invalid_path', 'doctorId must be an id');
  const where = ['doctor_id = $1'];
  const params = [doctorId];
  if (req.query.from !== undefined) {
    const from = parseInstant(req.query.from);
    if (!from) return sendError(res, 400, 'invalid_query', 'from must be an ISO-8601 UTC instant');
    params.push(from);
    where.push(`start_at >= $${params.length}`);
  }
  if (req.query.to !== undefined) {
    const to = parseInstant(req.query.to);
    if (!to) return sendError(res, 400, 'invalid_query', 'to must be an ISO-8601 UTC instant');
    params.push(to);
    where.push(`start_at < $${params.length}`);
  }
  if (req.query.status !== undefined) {
    if (!SLOT_STATUSES.has(req.query.status)) {
      return sendError(res, 400, 'invalid_query', 'status must be AVAILABLE, HELD, BOOKED or CLOSED');
    }
    params.push(req.query.status);
    where.push(`status = $${params.length}`);
  }
  const { rows } = await pool.query(
    `SELECT id, doctor_id, start_at, end_at, status FROM slots
      WHERE ${where.join(' AND ')} ORDER BY start_at`, params);
  res.json(rows.map((r) => ({
    id: r.id,
    doctorId: r.doctor_id,
    start: r.start_at.toISOString(),
    end: r.end_at.toISOString(),
    status: r.status,
  })));
});

// Hold a slot: one transaction, the slot row locked, so of concurrent requests for one
// slot exactly one wins and the others get 409.
app.post('/booking', async (req, res) => {
  const body = req.body ?? {};
  if (body.slotId === undefined) return sendError(res, 400, 'missing_field', 'slotId is required');
  const slotId = parseId(body.slotId);
  if (slotId === null) return sendError(res, 400, 'invalid_field', 'slotId must be an id');
  if (body.patientName === undefined) return sendError(res, 400, 'missing_field', 'patientName is required');
  if (typeof body.patientName !== 'string' || body.patientName.length === 0) {
    return sendError(res, 400, 'invalid_field', 'patientName must be a non-empty string');
  }
  const token = crypto.randomBytes(16).toString('hex');

  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const slot = await client.query('SELECT status FROM slots WHERE id = $1 FOR UPDATE', [slotId]);
    if (slot.rowCount === 0) {
      await client.query('ROLLBACK');
      return sendError(res, 404, 'slot_not_found', 'no slot has this id');
    }
    if (slot.rows[0].status !== 'AVAILABLE') {
      await client.query('ROLLBACK');
      return sendError(res, 409, 'slot_unavailable',
        'the slot is not available: it is held, booked or closed');
    }
    await client.query("UPDATE slots SET status = 'HELD' WHERE id = $1", [slotId]);
    const inserted = await client.query(
      `INSERT INTO bookings (slot_id, patient_name, status, token, expires_at)
       VALUES ($1, $2, 'PENDING', $3, now() + make_interval(secs => $4))
       RETURNING id, created_at, expires_at`,
      [slotId, body.patientName, token, HOLD_TTL]);
    await client.query('COMMIT');
    const b = inserted.rows[0];
    res.status(201).json({
      id: b.id,
      slotId,
      patientName: body.patientName,
      status: 'PENDING',
      createdAt: b.created_at.toISOString(),
      expiresAt: b.expires_at.toISOString(),
      token,
    });
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
});

app.use((req, res) => sendError(res, 404, 'not_found', 'no such route'));

// Express 5 passes rejected promises of async handlers here.
app.use((err, req, res, next) => { // eslint-disable-line no-unused-vars
  if (err.type === 'entity.parse.failed') return sendError(res, 400, 'invalid_json', 'the body is not valid JSON');
  if (err.type === 'entity.too.large') return sendError(res, 413, 'body_too_large', 'the body is too large');
  console.error(err);
  if (res.headersSent) return res.end();
  return sendError(res, 500, 'internal', 'internal error');
});

const server = app.listen(PORT, HOST, () => {
  console.log(`baseline listening on http://${HOST}:${server.address().port} (pool ${pool.options.max})`);
});

function shutdown() {
  server.close(() => pool.end().then(() => process.exit(0)));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
