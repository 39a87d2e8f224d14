-- Same data as compare_baseline.sh gives slotd: :doctors doctors (ids 1..), each with
-- :per contiguous slots of :minutes minutes from 2031-01-01T00:00Z; slot ids are
-- (doctor-1)*per + i, as slotd assigns them when the doctors' slots are posted in order.
\set ON_ERROR_STOP on
INSERT INTO doctors (id, name, specialty)
SELECT d, 'Dr. Bench ' || d, 'GP' FROM generate_series(1, :doctors) AS d;

INSERT INTO slots (id, doctor_id, start_at, end_at, status)
SELECT (d - 1) * :per + i, d,
       timestamptz '2031-01-01 00:00:00+00' + (i - 1) * make_interval(mins => :minutes),
       timestamptz '2031-01-01 00:00:00+00' + i * make_interval(mins => :minutes),
       'AVAILABLE'
FROM generate_series(1, :doctors) AS d, generate_series(1, :per) AS i
ORDER BY d, i;

SELECT setval('doctors_id_seq', (SELECT max(id) FROM doctors));
SELECT setval('slots_id_seq', (SELECT max(id) FROM slots));
-- Settle the cluster before the timed runs: fresh statistics, visibility map, and no
-- checkpoint or autovacuum of the seed data in the middle of a measurement.
VACUUM ANALYZE;
CHECKPOINT;
