// Small DOM helpers shared by the pages: element building, the live indicator, the
// screen-reader announcer, and busy buttons.

// h('button', {class: 'btn', onclick}, 'Text', child…): attributes starting with "on" are
// listeners; false/null attributes are left out; children may be strings, nodes or arrays.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// The header's live indicator: one fixed-width pill whose words and colour follow the feed.
const LIVE_WORDS = { connecting: 'Connecting…', live: 'Live updates', reconnecting: 'Reconnecting…', off: 'Offline' };
export function showFeedState(state) {
  const el = document.getElementById('live');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = LIVE_WORDS[state] ?? state;
  el.title = state === 'reconnecting'
    ? 'The live connection dropped; reconnecting and catching up on what changed meanwhile.'
    : state === 'live' ? 'Changes by others show here as they happen.' : '';
}

// Polite announcements for screen readers (e.g. "09:30 was just taken").
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  requestAnimationFrame(() => { el.textContent = text; });
}

// Marks a button busy while `work` runs; the button keeps its size.
export async function whileBusy(button, busyText, work) {
  const original = [...button.childNodes];
  const width = button.getBoundingClientRect().width;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (width) button.style.minWidth = `${width}px`;
  button.replaceChildren(h('span', { class: 'spinner', 'aria-hidden': 'true' }), busyText);
  try {
    return await work();
  } finally {
    button.replaceChildren(...original);
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

export function initials(name) {
  const words = name.replace(/^(dr|prof)\.?\s+/i, '').split(/\s+/).filter(Boolean);
  return ((words[0]?.[0] ?? '') + (words.length > 1 ? words[words.length - 1][0] : '')).toUpperCase();
}

// A stable, readable colour per name for avatars (all dark enough for white text).
const AVATAR_COLOURS = ['#0a5bc4', '#7a3fb8', '#0f7a6c', '#b24a0b', '#a3245c', '#3f5ac4', '#2f6f1f', '#8a3b0b'];
export function avatarColour(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return AVATAR_COLOURS[h % AVATAR_COLOURS.length];
}

export function avatar(name, large = false) {
  return h('span', { class: large ? 'avatar avatar-lg' : 'avatar', style: `background:${avatarColour(name)}`, 'aria-hidden': 'true' }, initials(name));
}

// Statuses read the same here as in the API and the journal (PENDING, FAILED, …).
export function badge(status) {
  return h('span', { class: `badge badge-${status}`, 'data-status': status }, status);
}

// Reuses the list items of `items` by key, so live updates change elements in place
// (focus stays, nothing else moves) instead of rebuilding the list.
export function reconcile(list, items, keyOf, create, update) {
  const existing = new Map([...list.children].map((li) => [li.dataset.key, li]));
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let li = existing.get(key);
    if (li) existing.delete(key);
    else {
      li = create(item);
      li.dataset.key = key;
    }
    update(li, item);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (li !== expected) list.insertBefore(li, expected);
    previous = li;
  }
  for (const li of existing.values()) li.remove();
}
