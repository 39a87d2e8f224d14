// Calls to slotd's HTTP API. Every call ends: a reply, an ApiError with the server's
// {"error":{"code","message"}}, or an ApiError with code 'network' after a timeout, so no
// page waits forever.

const ADMIN_TOKEN_KEY = 'slotd.adminToken';

export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = 0) {
    super(message);
    this.status = status; // 0 for network errors and timeouts
    this.code = code;
    this.retryAfterS = retryAfterS; // from Retry-After (429, 503), else 0
  }
  get isNetwork() {
    return this.status === 0;
  }
}

export function adminToken() {
  return sessionStorage.getItem(ADMIN_TOKEN_KEY) || '';
}
export function setAdminToken(token) {
  if (token) sessionStorage.setItem(ADMIN_TOKEN_KEY, token);
  else sessionStorage.removeItem(ADMIN_TOKEN_KEY);
}

// A random Idempotency-Key: a retry after a lost reply gets the first answer, not a second booking.
export function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function api(path, { method = 'GET', body, admin = false, bookingToken, waitlistToken, idempotencyKey, timeoutMs = 15000 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (admin) headers.Authorization = `Bearer ${adminToken()}`;
  if (bookingToken) headers['X-Booking-Token'] = bookingToken;
  if (waitlistToken) headers['X-Waitlist-Token'] = waitlistToken;
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal, cache: 'no-store',
    });
  } catch (e) {
    clearTimeout(timer);
    const timedOut = e?.name === 'AbortError';
    throw new ApiError(0, 'network', timedOut
      ? 'The server took too long to answer.'
      : 'The server could not be reached.');
  }
  let text = '';
  try {
    text = await response.text();
  } catch {
    throw new ApiError(0, 'network', 'The connection broke while the answer arrived.');
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data?.error;
    throw new ApiError(response.status, error?.code || `http_${response.status}`,
      error?.message || `The server answered ${response.status}.`, Number(response.headers.get('Retry-After')) || 0);
  }
  return data;
}

// Plain words for an error a page did not handle specially.
export function describeError(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong. Please try again.';
  if (error.isNetwork) return `${error.message} Check your connection and try again.`;
  if (error.status === 401) return 'The admin token was not accepted. Sign in again.';
  if (error.status === 429 && error.retryAfterS) return `Too many requests at once. Please try again in ${error.retryAfterS} s.`;
  if (error.status === 503) return 'The server is busy right now. Please try again in a moment.';
  if (error.status >= 500) return 'The server had a problem. Please try again.';
  return error.message;
}
