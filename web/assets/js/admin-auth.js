// The admin sign-in shared by /admin and /admin/dashboard: the admin token is asked once
// per browser tab, kept in sessionStorage and sent as "Authorization: Bearer <token>".
import { api, ApiError, adminToken, setAdminToken, describeError } from './http.js';
import { h, replaceChildren, whileBusy } from './dom.js';

// Resolves once a token the server accepts is stored; shows the sign-in form meanwhile.
export async function signedIn(main) {
  document.getElementById('sign-out').onclick = signOut;
  if (adminToken()) {
    try {
      await api('/admin/stats', { admin: true });
      return showChrome();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        return new Promise((resolve) => showProblem(main, error, () => resolve(signedIn(main))));
      }
      setAdminToken('');
    }
  }
  return new Promise((resolve) => showForm(main, resolve));
}

function showChrome() {
  document.getElementById('admin-nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
}

export function signOut() {
  setAdminToken('');
  location.reload();
}

function showProblem(main, error, retry) {
  replaceChildren(main, h('div', { class: 'card narrow' },
    h('h1', {}, 'The server could not be reached'),
    h('p', { role: 'alert' }, describeError(error)),
    h('button', { class: 'btn', type: 'button', onclick: retry }, 'Try again')));
}

function showForm(main, resolve) {
  const input = h('input', { id: 'admin-token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false', 'aria-describedby': 'token-hint' });
  const error = h('div', { class: 'alert alert-error', role: 'alert', id: 'signin-error' });
  const submit = h('button', { class: 'btn', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'stack', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'admin-token' }, 'Admin token'), input,
      h('span', { class: 'hint', id: 'token-hint' }, 'slotd prints where its token file is when it starts: by default ', h('code', {}, 'data/admin-token'), '. The token stays in this tab only.')),
    error, h('div', {}, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      replaceChildren(error, 'Enter the admin token.');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    setAdminToken(token);
    try {
      await whileBusy(submit, 'Checking…', () => api('/admin/stats', { admin: true }));
      showChrome();
      resolve();
    } catch (err) {
      setAdminToken('');
      input.setAttribute('aria-invalid', 'true');
      replaceChildren(error, err instanceof ApiError && err.status === 401 ? 'That token was not accepted. Check it and try again.' : describeError(err));
      input.focus();
    }
  });
  replaceChildren(main, h('section', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Clinic admin'),
    h('p', { class: 'muted' }, 'Sign in with the admin token to manage clinics, doctors, slots and bookings.'),
    form));
  input.focus();
}
