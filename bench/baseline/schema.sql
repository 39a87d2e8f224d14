-- Schema of the baseline app (bench/baseline/server.js): what a typical team would write.
CREATE TABLE clinics (
  id   serial PRIMARY KEY,
  name text NOT NULL
);

CREATE TABLE doctors (
  id        serial PRIMARY KEY,
  name      text NOT NULL,
  specialty text NOT NULL,
  clinic_id integer REFERENCES clinics (id)
);
CREATE INDEX doctors_clinic_id ON doctors (clinic_id);

CREATE TABLE slots (
  id        serial PRIMARY KEY,
  doctor_id integer NOT NULL REFERENCES doctors (id),
  start_at  timestamptz NOT NULL,
  end_at    timestamptz NOT NULL,
  status    text NOT NULL DEFAULT 'AVAILABLE'
            CHECK (status IN ('AVAILABLE', 'HELD', 'BOOKED', 'CLOSED')),
  CHECK (end_at > start_at)
);
-- GET /slots/:doctorId?from=&to= is a range scan on this.
CREATE INDEX slots_doctor_start ON slots (doctor_id, start_at);

CREATE TABLE bookings (
  id           serial PRIMARY KEY,
  slot_id      integer NOT NULL REFERENCES slots (id),
  patient_name text NOT NULL,
  status       text NOT NULL DEFAULT 'PENDING'
               CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED')),
  token        text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  confirmed_at timestamptz
);
-- Belt and braces next to SELECT ... FOR UPDATE: at most one live booking per slot.
CREATE UNIQUE INDEX bookings_one_live_per_slot ON bookings (slot_id)
  WHERE status IN ('PENDING', 'CONFIRMED');
