// Clinics and doctors as the pages need them: each doctor with its clinic's name and time
// zone. Loaded from the API on every visit, so a doctor added a minute ago is there.
import { api } from './http.js';
import { zoneOrUtc } from './time.js';

export async function loadDirectory({ admin = false } = {}) {
  const [clinics, doctors] = await Promise.all([api('/clinics', { admin }), api('/doctors')]);
  const byId = new Map();
  for (const c of clinics) byId.set(c.id, { id: c.id, name: c.name, timeZone: zoneOrUtc(c.timeZone) });
  const clinicOf = (id) => byId.get(id) ?? { id, name: `Clinic ${id}`, timeZone: 'UTC' };
  return {
    clinics: [...byId.values()],
    doctors: doctors.map((d) => ({ ...d, clinic: clinicOf(d.clinicId) })),
    clinicOf,
  };
}
