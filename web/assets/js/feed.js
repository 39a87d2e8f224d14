// The live feed (GET /ws) for one subscription, kept alive: after a dropped connection it
// reconnects with backoff and resubscribes with fromSeq (the first seq not yet seen), so
// the page gets exactly the events it missed, or a fresh snapshot when it is too far behind.

export class LiveFeed {
  // subscription: {doctorIds: [...]} or {clinicId}.
  // handlers: onSnapshot(slots, asOfSeq), onEvent(message), onState('connecting'|'live'|'reconnecting').
  constructor(subscription, handlers) {
    this.subscription = subscription;
    this.handlers = handlers;
    this.lastSeq = 0; // the newest seq applied; 0 before the first snapshot
    this.state = 'connecting';
    this.attempts = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && !this.socket) this.connectNow();
    };
    this.onOnline = () => {
      if (!this.socket) this.connectNow();
    };
  }

  start() {
    document.addEventListener('visibilitychange', this.onVisible);
    window.addEventListener('online', this.onOnline);
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener('visibilitychange', this.onVisible);
    window.removeEventListener('online', this.onOnline);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onclose = socket.onerror = socket.onmessage = socket.onopen = null;
      socket.close();
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.handlers.onState?.(state);
  }

  connectNow() {
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    if (this.stopped || this.socket) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    // A connection that neither opens nor fails (a stalled proxy) is given up after a while.
    const openTimer = setTimeout(() => socket.close(), 10000);
    socket.onopen = () => {
      clearTimeout(openTimer);
      const message = { op: 'subscribe', ...this.subscription };
      if (this.lastSeq > 0) message.fromSeq = this.lastSeq + 1;
      socket.send(JSON.stringify(message));
      this.attempts = 0;
      this.setState('live');
    };
    socket.onmessage = (e) => this.receive(e.data);
    socket.onerror = () => {}; // onclose follows and handles it
    socket.onclose = () => {
      clearTimeout(openTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      this.setState(this.lastSeq > 0 || this.attempts > 0 ? 'reconnecting' : 'connecting');
      const delay = Math.min(8000, 300 * 2 ** this.attempts) * (0.8 + 0.4 * Math.random());
      this.attempts += 1;
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case 'snapshot':
        this.lastSeq = message.asOfSeq;
        this.handlers.onSnapshot?.(message.slots, message.asOfSeq);
        break;
      case 'slot':
      case 'booking':
        if (message.seq <= this.lastSeq) return; // already part of what we have
        this.lastSeq = message.seq;
        this.handlers.onEvent?.(message);
        break;
      default:
        // resync_required is followed by a snapshot; errors only follow a bad subscribe.
        break;
    }
  }
}

// Feed slots and events carry ISO instants; pages work with milliseconds.
export function slotFromFeed(s) {
  return { id: s.id, doctorId: s.doctorId, start: Date.parse(s.start), end: Date.parse(s.end), status: s.status };
}
